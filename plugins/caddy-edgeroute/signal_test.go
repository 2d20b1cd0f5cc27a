package edgeroute_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// popSignal is the body of GET /edgeroute/pop.
type popSignal struct {
	Node        string `json:"node"`
	State       string `json:"state"`
	StateReason string `json:"state_reason"`
	Stale       bool   `json:"stale"`
	StaleReason string `json:"stale_reason"`
	Apps        map[string]struct {
		Routable int    `json:"routable"`
		Backends int    `json:"backends"`
		Reason   string `json:"reason"`
	} `json:"apps"`
	Seq uint64 `json:"seq"`
}

func (p *pop) signal() popSignal {
	p.t.Helper()
	var s popSignal
	if code := p.adminGet("/edgeroute/pop", &s); code != http.StatusOK {
		p.t.Fatalf("GET /edgeroute/pop: status %d", code)
	}
	return s
}

// watchSignal subscribes to GET /edgeroute/pop?watch=1 and delivers each
// signal with the time it arrived.
type timedSignal struct {
	popSignal
	at time.Time
}

func (p *pop) watchSignal() <-chan timedSignal { return p.watchSignalQuery("watch=1") }

// watchSignalQuery is watchSignal with the query given.
func (p *pop) watchSignalQuery(query string) <-chan timedSignal {
	p.t.Helper()
	resp, err := http.Get("http://" + p.admin + "/edgeroute/pop?" + query)
	if err != nil {
		p.t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		p.t.Fatalf("watch: status %s", resp.Status)
	}
	ch := make(chan timedSignal, 64)
	go func() {
		defer close(ch)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			var s timedSignal
			if json.Unmarshal(sc.Bytes(), &s.popSignal) == nil {
				s.at = time.Now()
				ch <- s
			}
		}
	}()
	p.t.Cleanup(func() { resp.Body.Close() })
	return ch
}

// waitFor reads signals until one satisfies ok.
func waitFor(t *testing.T, ch <-chan timedSignal, within time.Duration, what string, ok func(popSignal) bool) timedSignal {
	t.Helper()
	deadline := time.After(within)
	var last popSignal
	for {
		select {
		case s, open := <-ch:
			if !open {
				t.Fatalf("%s: the watch ended; last signal %+v", what, last)
			}
			last = s.popSignal
			if ok(s.popSignal) {
				return s
			}
		case <-deadline:
			t.Fatalf("%s: not within %v; last signal %+v", what, within, last)
		}
	}
}

// TestSignalCountsRoutableBackends: the sqlite3 CLI makes every backend of
// an app unhealthy, and GET /edgeroute/pop shows 0 routable within 250 ms,
// with the reason.
func TestSignalCountsRoutableBackends(t *testing.T) {
	p := startPOP(t, popConfig{})
	a, b := startBackend(t, "be-a"), startBackend(t, "be-b")
	p.addBackend(a, "myapp", "sa", "BR", 100, 150)
	p.addBackend(b, "myapp", "sa", "BR", 100, 150)
	p.addBackend(startBackend(t, "other-1"), "other", "sa", "BR", 100, 150)
	p.waitBackends(3)
	eventually(t, 2*time.Second, func() string {
		s := p.signal()
		if s.State != "serving" || s.Apps["myapp"].Routable != 2 || s.Apps["other"].Routable != 1 {
			return fmt.Sprintf("signal %+v", s)
		}
		return ""
	})
	watch := p.watchSignal()
	waitFor(t, watch, time.Second, "the first delivery", func(s popSignal) bool { return s.Apps["myapp"].Routable == 2 })

	start := time.Now()
	p.sql(`UPDATE backends SET healthy = 0 WHERE app = 'myapp'`)
	got := waitFor(t, watch, 2*time.Second, "myapp at 0 routable", func(s popSignal) bool { return s.Apps["myapp"].Routable == 0 })
	took := got.at.Sub(start)
	t.Logf("table edit to signal: %v", took)
	if took > 250*time.Millisecond {
		t.Errorf("the signal showed 0 routable after %v, want within 250ms", took)
	}
	app := got.Apps["myapp"]
	if app.Backends != 2 || !strings.Contains(app.Reason, "2 marked unhealthy in the table") {
		t.Errorf("myapp: %+v, want 2 backends and the reason", app)
	}
	if got.Apps["other"].Routable != 1 {
		t.Errorf("another app moved: %+v", got.Apps["other"])
	}
	if v := p.metric(`edgeroute_app_routable_backends{app="myapp"}`); v != "0" {
		t.Errorf("metric edgeroute_app_routable_backends{app=myapp} = %q, want 0", v)
	}

	p.sql(`UPDATE backends SET healthy = 1 WHERE id = 'be-a'`)
	waitFor(t, watch, 2*time.Second, "one backend back", func(s popSignal) bool { return s.Apps["myapp"].Routable == 1 })
}

// TestSignalForNamedApps: GET /edgeroute/pop?app=... shows only the apps
// named, and its stream writes a line only when one of them (or the POP's
// state) changes, not when another app does.
func TestSignalForNamedApps(t *testing.T) {
	p := startPOP(t, popConfig{})
	p.addBackend(startBackend(t, "be-a"), "myapp", "sa", "BR", 100, 150)
	p.addBackend(startBackend(t, "be-b"), "myapp", "sa", "BR", 100, 150)
	p.addBackend(startBackend(t, "other-1"), "other", "sa", "BR", 100, 150)
	p.waitBackends(3)
	eventually(t, 2*time.Second, func() string {
		if s := p.signal(); s.Apps["myapp"].Routable != 2 || s.Apps["other"].Routable != 1 {
			return fmt.Sprintf("signal %+v", s)
		}
		return ""
	})
	var one, two popSignal
	p.adminGet("/edgeroute/pop?app=myapp", &one)
	if len(one.Apps) != 1 || one.Apps["myapp"].Routable != 2 || one.State != "serving" {
		t.Fatalf("?app=myapp: %+v, want myapp alone with 2 routable", one)
	}
	p.adminGet("/edgeroute/pop?app=myapp,nothere&app=other", &two)
	if len(two.Apps) != 2 || two.Apps["myapp"].Routable != 2 || two.Apps["other"].Routable != 1 {
		t.Fatalf("?app=myapp,nothere&app=other: %+v, want myapp and other", two)
	}

	watch := p.watchSignalQuery("watch=1&app=myapp")
	first := waitFor(t, watch, time.Second, "the first delivery", func(s popSignal) bool { return true })
	if len(first.Apps) != 1 || first.Apps["myapp"].Routable != 2 {
		t.Fatalf("first line of the stream for myapp: %+v", first.popSignal)
	}
	p.sql(`UPDATE backends SET healthy = 0 WHERE app = 'other'`)
	eventually(t, 2*time.Second, func() string {
		if s := p.signal(); s.Apps["other"].Routable != 0 {
			return fmt.Sprintf("other still routable: %+v", s.Apps["other"])
		}
		return ""
	})
	p.sql(`UPDATE backends SET healthy = 0 WHERE id = 'be-a'`)
	select {
	case s := <-watch:
		if len(s.Apps) != 1 || s.Apps["myapp"].Routable != 1 {
			t.Fatalf("the line after other's edit and myapp's: %+v, want myapp alone at 1 routable (other's edit wrote a line)", s.popSignal)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("no line for myapp's edit within 2s")
	}
	out, err := exec.Command(caddyBin, "edgeroute", "pop", "--app", "myapp", "--address", p.admin).CombinedOutput()
	if err != nil {
		t.Fatalf("caddy edgeroute pop --app myapp: %v\n%s", err, out)
	}
	if !regexp.MustCompile(`(?m)^myapp +1 +2 `).Match(out) || strings.Contains(string(out), "other") {
		t.Errorf("caddy edgeroute pop --app myapp printed:\n%s", out)
	}
}

// TestDrainAndUndrain: the CLI and the maintenance file drain the POP;
// connections keep routing while it drains.
func TestDrainAndUndrain(t *testing.T) {
	drainFile := filepath.Join(t.TempDir(), "drain")
	p := startPOP(t, popConfig{extraGlobal: "drain_file " + drainFile})
	p.addBackend(startBackend(t, "be-a"), "myapp", "sa", "BR", 100, 150)
	p.waitBackends(1)
	watch := p.watchSignal()
	waitFor(t, watch, time.Second, "serving", func(s popSignal) bool { return s.State == "serving" })

	out, err := exec.Command(caddyBin, "edgeroute", "drain", "--address", p.admin, "--reason", "kernel upgrade").CombinedOutput()
	if err != nil {
		t.Fatalf("caddy edgeroute drain: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "draining") || !strings.Contains(string(out), "kernel upgrade") {
		t.Errorf("drain printed:\n%s", out)
	}
	if !regexp.MustCompile(`(?m)^myapp +1 +1 +-$`).Match(out) {
		t.Errorf("drain did not list myapp with 1 of 1 backends routable:\n%s", out)
	}
	s := waitFor(t, watch, time.Second, "draining", func(s popSignal) bool { return s.State == "draining" })
	if !strings.Contains(s.StateReason, "kernel upgrade") {
		t.Errorf("state reason %q does not carry the operator's reason", s.StateReason)
	}
	if got := p.via(clientBR); got != "be-a" {
		t.Errorf("a draining POP stopped routing: got %q", got)
	}
	if v := p.metric(`edgeroute_pop_state{state="draining"}`); v != "1" {
		t.Errorf("metric edgeroute_pop_state{state=draining} = %q, want 1", v)
	}
	out, err = exec.Command(caddyBin, "edgeroute", "undrain", "--address", p.admin).CombinedOutput()
	if err != nil {
		t.Fatalf("caddy edgeroute undrain: %v\n%s", err, out)
	}
	waitFor(t, watch, time.Second, "serving after undrain", func(s popSignal) bool { return s.State == "serving" })

	if err := os.WriteFile(drainFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	s = waitFor(t, watch, 2*time.Second, "draining by file", func(s popSignal) bool { return s.State == "draining" })
	if !strings.Contains(s.StateReason, drainFile) {
		t.Errorf("state reason %q does not name the maintenance file", s.StateReason)
	}
	// An operator's undrain does not override the file.
	exec.Command(caddyBin, "edgeroute", "undrain", "--address", p.admin).Run()
	if st := p.signal(); st.State != "draining" {
		t.Errorf("undrain overrode the maintenance file: %s", st.State)
	}
	os.Remove(drainFile)
	waitFor(t, watch, 2*time.Second, "serving after the file went", func(s popSignal) bool { return s.State == "serving" })
	if !strings.Contains(p.logs(), "maintenance file found") {
		t.Error("the maintenance file was not logged")
	}
}

// TestStaleTableKeepsRouting: a table that cannot be read marks the signal
// stale and keeps the last snapshot, also when the backends table is gone
// altogether; nothing turns into "no backends".
func TestStaleTableKeepsRouting(t *testing.T) {
	p := startPOP(t, popConfig{})
	p.addBackend(startBackend(t, "be-a"), "myapp", "sa", "BR", 100, 150)
	p.waitBackends(1)
	watch := p.watchSignal()
	waitFor(t, watch, time.Second, "one routable", func(s popSignal) bool { return s.Apps["myapp"].Routable == 1 })

	for _, c := range []struct{ name, breakSQL, repairSQL, reason string }{
		{"columns gone",
			`BEGIN; ALTER TABLE backends RENAME TO backends_saved; CREATE VIEW backends AS SELECT id FROM backends_saved; COMMIT`,
			`BEGIN; DROP VIEW backends; ALTER TABLE backends_saved RENAME TO backends; COMMIT`,
			"no such column"},
		{"table gone",
			`ALTER TABLE backends RENAME TO backends_saved`,
			`ALTER TABLE backends_saved RENAME TO backends`,
			"no backends table"},
	} {
		p.sql(c.breakSQL)
		s := waitFor(t, watch, 3*time.Second, c.name+": stale", func(s popSignal) bool { return s.Stale })
		if !strings.Contains(s.StaleReason, c.reason) || s.Apps["myapp"].Routable != 1 {
			t.Errorf("%s: stale signal %+v, want the reason %q and the last counts", c.name, s.popSignal, c.reason)
		}
		for range 3 {
			if got := p.via(clientBR); got != "be-a" {
				t.Fatalf("%s: a stale table stopped routing: got %q", c.name, got)
			}
		}
		if v := p.metric("edgeroute_table_stale"); v != "1" {
			t.Errorf("%s: edgeroute_table_stale = %q", c.name, v)
		}
		p.sql(c.repairSQL)
		waitFor(t, watch, 3*time.Second, c.name+": readable again", func(s popSignal) bool { return !s.Stale })
	}
}

// TestSigtermSignalsStoppingBeforeListenersClose: with a stop delay, a
// subscriber sees `stopping` while the listener still serves, and the
// listener closes only after the delay.
func TestSigtermSignalsStoppingBeforeListenersClose(t *testing.T) {
	p := startPOP(t, popConfig{extraGlobal: "stop_delay 1500ms", listener: true})
	p.addBackend(startBackend(t, "be-a"), "myapp", "sa", "BR", 100, 150)
	p.waitBackends(1)
	watch := p.watchSignal()
	waitFor(t, watch, time.Second, "serving", func(s popSignal) bool { return s.State == "serving" })

	sent := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	s := waitFor(t, watch, time.Second, "stopping", func(s popSignal) bool { return s.State == "stopping" })
	t.Logf("SIGTERM to stopping at the subscriber: %v", s.at.Sub(sent))
	if got := p.via(clientBR); got != "be-a" {
		t.Fatalf("the listener stopped serving as soon as the POP was stopping: got %q", got)
	}
	var closed time.Time
	for time.Since(sent) < 10*time.Second {
		c, err := net.DialTimeout("tcp", p.listen, time.Second)
		if err != nil {
			closed = time.Now()
			break
		}
		c.Close()
		time.Sleep(20 * time.Millisecond)
	}
	if closed.IsZero() {
		t.Fatal("the listener never closed")
	}
	if d := closed.Sub(sent); d < 1500*time.Millisecond {
		t.Errorf("the listener closed %v after SIGTERM, before the 1.5s stop delay", d)
	}
}
