package edgeroute_test

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"
)

func runCaddy(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(caddyBin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("caddy %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func regexpMatch(re, s string) bool { return regexp.MustCompile(re).MatchString(s) }

// An edgeProxy v1 routing.db, with and without the country column, is
// migrated in place and routes as v1 routed it.
func TestV1RoutingDBRoutesUnchanged(t *testing.T) {
	for _, withCountry := range []bool{true, false} {
		t.Run(fmt.Sprintf("country column %v", withCountry), func(t *testing.T) {
			eu, us, sa := startBackend(t, "eu-node-1"), startBackend(t, "us-node-1"), startBackend(t, "sa-node-1")
			db := filepath.Join(t.TempDir(), "routing.db")
			country, countryCol := "", ""
			if withCountry {
				country, countryCol = "country TEXT,", "country,"
			}
			row := func(id, region, cc string, port int) string {
				if withCountry {
					return fmt.Sprintf("('%s','myapp','%s','%s','127.0.0.1',%d,1,1,100,200)", id, region, cc, port)
				}
				return fmt.Sprintf("('%s','myapp','%s','127.0.0.1',%d,1,1,100,200)", id, region, port)
			}
			schema := fmt.Sprintf(`CREATE TABLE backends (id TEXT PRIMARY KEY, app TEXT, region TEXT, %s wg_ip TEXT, port INTEGER,
				healthy INTEGER, weight INTEGER, soft_limit INTEGER, hard_limit INTEGER, deleted INTEGER DEFAULT 0);
				INSERT INTO backends (id, app, region, %s wg_ip, port, healthy, weight, soft_limit, hard_limit) VALUES %s, %s, %s;`,
				country, countryCol, row("sa-node-1", "sa", "BR", sa.port()), row("us-node-1", "us", "US", us.port()), row("eu-node-1", "eu", "DE", eu.port()))
			if out, err := exec.Command("sqlite3", db, schema).CombinedOutput(); err != nil {
				t.Fatalf("%v %s", err, out)
			}
			p := startPOP(t, popConfig{region: "sa", country: "BR", db: db})
			// v1: a French client goes to the EU backend (same region;
			// same country is impossible here), a Brazilian one to sa,
			// an unknown one to the POP's region.
			for from, want := range map[string]string{clientFR: "eu-node-1", clientBR: "sa-node-1", clientUnknown: "sa-node-1", clientJP: "sa-node-1"} {
				if got := p.via(from); got != want {
					t.Errorf("client %s: got %s, want %s", from, got, want)
				}
			}
			out, _ := exec.Command("sqlite3", db, "PRAGMA user_version; SELECT count(*) FROM pragma_table_info('backends') WHERE name='country'").CombinedOutput()
			if string(out) != "2\n1\n" { // schema version 2: replication (store/crdt.go)
				t.Fatalf("file not migrated in place: %q", out)
			}
		})
	}
}

// A config reload does not cut a connection in flight, and the new config
// routes new connections.
func TestReloadKeepsLiveConnections(t *testing.T) { frontends(t, testReloadKeepsLiveConnections) }

func testReloadKeepsLiveConnections(t *testing.T, listener bool) {
	p := startPOP(t, popConfig{region: "eu", country: "FR", listener: listener})
	a := startBackend(t, "fr-a")
	p.addBackend(a, "myapp", "eu", "FR", 100, 200)
	var live *conn
	eventually(t, 2*time.Second, func() string {
		if live = p.connect(clientFR); live.backend != "fr-a" {
			return "got " + live.backend
		}
		return ""
	})
	cfg := filepath.Join(p.dir, "Caddyfile")
	runCaddy(t, "reload", "--config", cfg, "--adapter", "caddyfile", "--address", p.admin, "--force")
	// The old connection still carries bytes both ways.
	for i := range 3 {
		fmt.Fprintf(live, "after reload %d\n", i)
		live.SetReadDeadline(time.Now().Add(2 * time.Second))
		if line, err := live.r.ReadString('\n'); err != nil || line != fmt.Sprintf("after reload %d\n", i) {
			t.Fatalf("live connection cut by reload: %q %v", line, err)
		}
	}
	if got := p.via(clientFR2); got != "fr-a" {
		t.Fatalf("new connection after reload got %q", got)
	}
	// Live counts survive the reload: the held connection is still counted.
	eventually(t, 2*time.Second, func() string {
		var table struct {
			Backends []struct {
				Active int64 `json:"active_connections"`
			}
		}
		p.adminGet("/edgeroute/backends", &table)
		if table.Backends[0].Active != 1 {
			return fmt.Sprintf("active connections after reload: %d, want 1", table.Backends[0].Active)
		}
		return ""
	})
}
