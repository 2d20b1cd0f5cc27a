package edgeroute_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// The four-POP table of v1's documentation, seen from a POP in South America.
func worldTable(t *testing.T, listener bool) (*pop, map[string]*backend) {
	p := startPOP(t, popConfig{region: "sa", country: "BR", listener: listener})
	bs := map[string]*backend{}
	for _, spec := range []struct{ name, region, country string }{
		{"us-1", "us", "US"}, {"fr-1", "eu", "FR"}, {"de-1", "eu", "DE"}, {"br-1", "sa", "BR"},
	} {
		bs[spec.name] = startBackend(t, spec.name)
		p.addBackend(bs[spec.name], "myapp", spec.region, spec.country, 100, 200)
	}
	p.waitBackends(4)
	return p, bs
}

func TestClientsLandWhereV1RulesSay(t *testing.T) { frontends(t, testClientsLandWhereV1RulesSay) }

func testClientsLandWhereV1RulesSay(t *testing.T, listener bool) {
	p, _ := worldTable(t, listener)
	for _, c := range []struct{ from, want, why string }{
		{clientFR, "fr-1", "same country"},
		{clientDE, "de-1", "same country"},
		{clientBR, "br-1", "same country"},
		{clientJP, "br-1", "no backend in Asia-Pacific: the POP's own region"},
		{clientUnknown, "br-1", "unknown client: the POP's own region"},
	} {
		if got := p.via(c.from); got != c.want {
			t.Errorf("client %s (%s): got %s, want %s", c.from, c.why, got, c.want)
		}
	}
	// The explanation agrees with the decision and names every candidate.
	var route struct {
		ClientCountry string `json:"client_country"`
		Chosen        string `json:"chosen"`
		Candidates    []struct {
			ID, Reason string
			Geo        int `json:"geo"`
		}
	}
	if code := p.adminGet("/edgeroute/route?app=myapp&client="+clientDE, &route); code != 200 {
		t.Fatalf("route explain: HTTP %d", code)
	}
	if route.ClientCountry != "DE" || route.Chosen != "de-1" || len(route.Candidates) != 4 {
		t.Fatalf("explanation: %+v", route)
	}
	for _, c := range route.Candidates {
		if c.ID == "fr-1" && (c.Geo != 1 || !strings.Contains(c.Reason, "higher score")) {
			t.Errorf("fr-1 for a German client should be tier 1 and lose on score: %+v", c)
		}
	}
	// The CLI asks the running instance and prints the same decision.
	out := runCaddy(t, "edgeroute", "route", "--app", "myapp", "--client", clientDE, "--address", p.admin)
	if !strings.Contains(out, "country DE") || !regexpMatch(`de-1 .*chosen: lowest score`, out) {
		t.Fatalf("caddy edgeroute route printed:\n%s", out)
	}
}

func TestSqlite3EditsRouteWithin200ms(t *testing.T) {
	p, _ := worldTable(t, false)
	p.sql(`UPDATE backends SET healthy=0 WHERE id='fr-1'`)
	took := eventually(t, 200*time.Millisecond+100*time.Millisecond, func() string {
		if got := p.via(clientFR2); got != "de-1" {
			return "FR client still got " + got
		}
		return ""
	})
	t.Logf("unhealthy backend out of rotation after %v", took)
	// Deleted (v1's soft delete) works the same; the French client that
	// was bound to de-1 by affinity stays there.
	p.sql(`UPDATE backends SET healthy=1 WHERE id='fr-1'; UPDATE backends SET deleted=1 WHERE id='de-1'`)
	eventually(t, 300*time.Millisecond, func() string {
		if got := p.via(clientDE); got != "fr-1" {
			return "German client got " + got + ", want fr-1 once de-1 is deleted"
		}
		return ""
	})
	// A row removed with DELETE is gone too.
	p.sql(`DELETE FROM backends WHERE id='fr-1'`)
	eventually(t, 300*time.Millisecond, func() string {
		if got := p.via(clientDE); got != "br-1" {
			return "German client got " + got + ", want br-1 (POP region)"
		}
		return ""
	})
}

func TestAffinityHoldsWhileEligible(t *testing.T) { frontends(t, testAffinityHoldsWhileEligible) }

func testAffinityHoldsWhileEligible(t *testing.T, listener bool) {
	p := startPOP(t, popConfig{region: "eu", country: "FR", listener: listener})
	a, b := startBackend(t, "fr-a"), startBackend(t, "fr-b")
	p.addBackend(a, "myapp", "eu", "FR", 10, 100)
	p.addBackend(b, "myapp", "eu", "FR", 10, 100)
	p.waitBackends(2)
	var first *conn
	eventually(t, 2*time.Second, func() string {
		if first = p.connect(clientFR); first.backend != "fr-a" {
			return "first client got " + first.backend
		}
		return ""
	})
	// fr-a now carries a connection and fr-b none, yet the same client
	// stays on fr-a...
	for i := range 3 {
		if got := p.connect(clientFR); got.backend != "fr-a" {
			t.Fatalf("connection %d of a bound client went to %s", i, got.backend)
		}
	}
	// ...while a new client gets the best backend.
	if got := p.via(clientFR2); got != "fr-b" {
		t.Fatalf("new client got %s, want the idle fr-b", got)
	}
	// When its backend becomes ineligible the client moves, and stays.
	p.sql(`UPDATE backends SET healthy=0 WHERE id='fr-a'`)
	eventually(t, 300*time.Millisecond, func() string {
		if got := p.via(clientFR); got != "fr-b" {
			return "bound client still sent to " + got
		}
		return ""
	})
	p.sql(`UPDATE backends SET healthy=1 WHERE id='fr-a'`)
	time.Sleep(150 * time.Millisecond)
	if got := p.via(clientFR); got != "fr-b" {
		t.Fatalf("client should keep its new backend fr-b, got %s", got)
	}
	// The connection opened first is still proxied.
	fmt.Fprintf(first, "ping\n")
	first.SetReadDeadline(time.Now().Add(2 * time.Second))
	if line, err := first.r.ReadString('\n'); err != nil || line != "ping\n" {
		t.Fatalf("first connection broken: %q %v", line, err)
	}
}

func TestHardLimitNeverExceeded(t *testing.T) { frontends(t, testHardLimitNeverExceeded) }

func testHardLimitNeverExceeded(t *testing.T, listener bool) {
	p := startPOP(t, popConfig{region: "eu", country: "FR", extraGlobal: "affinity off", listener: listener})
	a := startBackend(t, "fr-a")
	p.addBackend(a, "myapp", "eu", "FR", 1, 3)
	p.waitBackends(1)
	refusedBefore := p.metric(`edgeroute_refused_connections_total{app="myapp"}`)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []*conn
	)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := p.connect(fmt.Sprintf("127.0.1.%d", i+1))
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}()
	}
	wg.Wait()
	served := 0
	for _, c := range conns {
		if c.backend == "fr-a" {
			served++
		}
	}
	a.mu.Lock()
	open := a.open
	a.mu.Unlock()
	if served != 3 || open != 3 {
		t.Fatalf("%d connections served, backend holds %d; hard limit is 3", served, open)
	}
	var table struct {
		Backends []struct {
			ID     string
			Active int64 `json:"active_connections"`
		}
	}
	p.adminGet("/edgeroute/backends", &table)
	if len(table.Backends) != 1 || table.Backends[0].Active != 3 {
		t.Fatalf("admin API active count: %+v", table.Backends)
	}
	if got := p.metric(`edgeroute_refused_connections_total{app="myapp"}`); atoi(got)-atoi(refusedBefore) != 17 {
		t.Fatalf("refused counter went from %s to %s, want 17 more", refusedBefore, got)
	}
	// Closing the connections frees the slots: the count goes down.
	for _, c := range conns {
		c.Close()
	}
	eventually(t, 2*time.Second, func() string {
		p.adminGet("/edgeroute/backends", &table)
		if table.Backends[0].Active != 0 {
			return fmt.Sprintf("active still %d after all clients left", table.Backends[0].Active)
		}
		return ""
	})
}

func TestDialFailureRetriesNextBackend(t *testing.T) { frontends(t, testDialFailureRetriesNextBackend) }

func testDialFailureRetriesNextBackend(t *testing.T, listener bool) {
	p := startPOP(t, popConfig{region: "eu", country: "FR", handlerOpts: "dial_timeout 1s\ntries 2", listener: listener})
	dead := startBackend(t, "fr-dead")
	dead.ln.Close() // its port now refuses connections
	alive := startBackend(t, "de-1")
	p.addBackend(dead, "myapp", "eu", "FR", 100, 200)
	p.addBackend(alive, "myapp", "eu", "DE", 100, 200)
	eventually(t, 2*time.Second, func() string {
		if got := p.via(clientFR); got != "de-1" {
			return "FR client got " + got + ", want de-1 after fr-dead refuses"
		}
		return ""
	})
	if got := p.metric(`edgeroute_backend_dial_failures_total{app="myapp",backend="fr-dead"}`); got == "" || got == "0" {
		t.Fatalf("dial failures of fr-dead: %q", got)
	}
	if !strings.Contains(p.logs(), `"backend":"fr-dead"`) {
		t.Fatal("dial failure not logged with the backend's id")
	}
}
