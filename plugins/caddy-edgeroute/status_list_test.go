package edgeroute_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/internal/popctl"
)

// TestStatusPageListsTheBackendsThatMatter: of an app of 30 backends, three
// of them unhealthy, the page lists as many as backends_per_app says, the
// unhealthy ones first, and counts the rest; with all it lists every one.
func TestStatusPageListsTheBackendsThatMatter(t *testing.T) {
	for _, c := range []struct {
		option string
		listed int
	}{{"", 25}, {"backends_per_app 5", 5}, {"backends_per_app all", 30}} {
		t.Run(fmt.Sprintf("%d listed", c.listed), func(t *testing.T) {
			port := freePort(t)
			p, err := popctl.New(popctl.Options{Bin: caddyBin, Dir: t.TempDir(), NoCluster: true, App: "big",
				Sites: fmt.Sprintf("http://127.0.0.1:%d {\n\tedgeroute_status {\n\t\t%s\n\t}\n}\n", port, c.option)})
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Start(); err != nil {
				t.Fatalf("%v\n%s", err, p.Logs())
			}
			t.Cleanup(p.Kill)
			if _, err := p.SQL(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 30)
				INSERT INTO backends (id, app, region, country, wg_ip, port, healthy)
				SELECT printf('big-%02d', i), 'big', 'sa', 'BR', '127.0.0.1', 9, i NOT IN (7, 15, 23) FROM n`); err != nil {
				t.Fatal(err)
			}
			if err := p.WaitBackends(30, 5*time.Second); err != nil {
				t.Fatal(err)
			}
			page := fmt.Sprintf("http://127.0.0.1:%d/", port)
			var view struct {
				Apps []struct {
					Name     string `json:"name"`
					Count    int    `json:"count"`
					Routable int    `json:"routable"`
					Unlisted int    `json:"unlisted"`
					Backends []struct {
						ID       string `json:"id"`
						Routable bool   `json:"routable"`
					} `json:"backends"`
				} `json:"apps"`
			}
			if err := json.Unmarshal([]byte(get(t, page+"?format=json")), &view); err != nil {
				t.Fatal(err)
			}
			if len(view.Apps) != 1 {
				t.Fatalf("apps: %+v", view.Apps)
			}
			app := view.Apps[0]
			if app.Count != 30 || app.Routable != 27 || len(app.Backends) != c.listed || app.Unlisted != 30-c.listed {
				t.Fatalf("app big: %d backends, %d routable, %d listed, %d unlisted; want 30, 27, %d, %d",
					app.Count, app.Routable, len(app.Backends), app.Unlisted, c.listed, 30-c.listed)
			}
			for i, want := range []string{"big-07", "big-15", "big-23"} {
				if b := app.Backends[i]; b.ID != want || b.Routable {
					t.Errorf("listed backend %d: %+v, want %s, not routable", i, b, want)
				}
			}
			fragment := get(t, page+"?format=fragment")
			more := fmt.Sprintf("%d more not listed", 30-c.listed)
			if strings.Contains(fragment, more) != (c.listed < 30) || !strings.Contains(fragment, "27 of 30 routable") {
				t.Errorf("the page should say %q (%v) and 27 of 30 routable:\n%s", more, c.listed < 30, fragment)
			}
		})
	}
}

// get reads a page, failing the test on anything but 200.
func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %v\n%s", url, resp.Status, err, b)
	}
	return string(b)
}
