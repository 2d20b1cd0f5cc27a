package internal

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/routing"
	"github.com/edgeproxy/edgeproxy/store"

	"github.com/miekg/dns"
)

// zoneText renders every name of a zone with every record it serves, for
// every class of client, and the transfer's order.
func zoneText(z *zone) []string {
	rrs := func(set *rrset) string {
		var b strings.Builder
		for _, l := range [][]string{str(set.a), str(set.aaaa), str(set.srv), str(set.txt), str(set.glue)} {
			b.WriteString(strings.Join(l, ";"))
			b.WriteString("|")
		}
		return b.String()
	}
	var out []string
	z.names.Each(func(n *node) {
		{
			name := n.name
			line := fmt.Sprintf("%s %v def=%s", name, n.kind, rrs(z.names.records(n)))
			var keys []string
			if r := z.names.rankingOf(n); r != nil {
				for k, s := range r.sets().byCountry {
					keys = append(keys, "c:"+k+"="+rrs(s))
				}
				for k, s := range r.sets().byRegion {
					keys = append(keys, "r:"+k+"="+rrs(s))
				}
			}
			sort.Strings(keys)
			out = append(out, line+" "+strings.Join(keys, " "))
		}
	})
	sort.Strings(out)
	for _, n := range z.axfr.list() {
		out = append(out, "axfr "+n.name)
	}
	out = append(out, "soa "+z.soa.String(), "ns "+z.ns.String(), "nsglue "+strings.Join(str(z.nsGlue), ";"))
	return out
}

// Every edit of a random history (rows added, edited, moved between apps
// and regions, renamed, deleted; health rows written; POPs changed; a
// misspelled row that forces whole builds) leaves the served records equal
// to a whole build of the same table, whether the plugin followed the
// change name by name or built everything.
func TestFollowedRecordsMatchWholeBuilds(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "routing.db")
	w, err := store.Open(ctx, path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	sql := func(stmt string) {
		t.Helper()
		if out, err := exec.Command("sqlite3", "-cmd", ".timeout 5000", path, stmt).CombinedOutput(); err != nil {
			t.Fatalf("sqlite3 %s: %v: %s", stmt, err, out)
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	regions := []string{"sa", "eu", "us"}
	countries := []string{"BR", "DE", "US"}
	next := 0
	insert := func() string {
		next++
		r := rng.IntN(3)
		return fmt.Sprintf("INSERT INTO backends (id, app, region, country, wg_ip, port, weight) VALUES ('b%d', 'app%d', '%s', '%s', '10.0.%d.%d', %d, %d);",
			next, rng.IntN(4), regions[r], countries[r], next/250, next%250, 80+rng.IntN(3), 1+rng.IntN(3))
	}
	script := "INSERT INTO pops (node, region, addr, prefix6) VALUES ('pop1', 'sa', '192.0.2.1:4001', 'fdaa:0:1:2a::/64');"
	for range 30 {
		script += insert()
	}
	sql(script)

	in := newFollower(t, path, "internal.", "edge.example.")
	r := in.store
	type delivery struct {
		t *routing.Table
		d store.Delta
		w []string
	}
	got := make(chan delivery, 16)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go r.Watch(wctx, store.Watcher{OnDelta: func(t *routing.Table, d store.Delta, w []string) { got <- delivery{t, d, w} }})
	// follow hands the next delivery to the plugin and, if check, compares;
	// it reports whether the plugin could follow it name by name. Records
	// are written at the first ask, and a comparison asks for all of
	// them: steps left unchecked make the next build follow a snapshot
	// whose records were never written.
	follow := func(step string, check bool) (followed bool) {
		t.Helper()
		var dl delivery
		select {
		case dl = <-got:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: no snapshot", step)
		}
		// Commits the watcher read together come as one delivery;
		// take any that followed.
		for more := true; more; {
			select {
			case n := <-got:
				if n.d.Full {
					dl.d.Full = true
				}
				dl.t, dl.w = n.t, n.w
				dl.d.Backends = append(dl.d.Backends, n.d.Backends...)
				dl.d.Health = append(dl.d.Health, n.d.Health...)
				dl.d.Pops = dl.d.Pops || n.d.Pops
			case <-time.After(30 * time.Millisecond):
				more = false
			}
		}
		_, followed = rebuild(in.build, in.snap.Load(), dl.t, dl.d, nil)
		if err := in.follow(ctx, dl.t, dl.d, dl.w); err != nil {
			t.Fatal(err)
		}
		down, err := r.DownBackends(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !check {
			return followed
		}
		want, _ := build(in.build, dl.t, down)
		have := in.snap.Load()
		for i := range want.zones {
			if g, w := zoneText(have.zones[i]), zoneText(want.zones[i]); !reflect.DeepEqual(g, w) {
				for j := range max(len(g), len(w)) {
					if j >= len(g) || j >= len(w) || g[j] != w[j] {
						t.Fatalf("%s: zone %s differs from a whole build at line %d:\nfollowed %q\nwhole    %q", step, want.zones[i].origin, j, at(g, j), at(w, j))
					}
				}
			}
		}
		return followed
	}
	follow("start", true)
	incremental := 0
	for i := range 80 {
		id := fmt.Sprintf("b%d", 1+rng.IntN(next))
		var stmt string
		switch rng.IntN(9) {
		case 0:
			stmt = insert()
		case 1:
			stmt = fmt.Sprintf("UPDATE backends SET healthy = 1 - healthy WHERE id = '%s'", id)
		case 2:
			stmt = fmt.Sprintf("UPDATE backends SET app = 'app%d', weight = %d WHERE id = '%s'", rng.IntN(5), 1+rng.IntN(4), id)
		case 3:
			r := rng.IntN(3)
			stmt = fmt.Sprintf("UPDATE backends SET region = '%s', country = '%s' WHERE id = '%s'", regions[r], countries[r], id)
		case 4:
			stmt = fmt.Sprintf("DELETE FROM backends WHERE id = '%s'", id)
		case 5:
			stmt = fmt.Sprintf("UPDATE backends SET deleted = 1 - deleted WHERE id = '%s'", id)
		case 6:
			stmt = fmt.Sprintf("INSERT OR REPLACE INTO health (backend_id, observer, healthy) VALUES ('%s', 'pop%d', %d)", id, rng.IntN(2), rng.IntN(2))
		case 7:
			stmt = fmt.Sprintf("UPDATE backends SET id = 'n%d' WHERE id = '%s'", i, id)
		case 8:
			if rng.IntN(4) == 0 {
				stmt = fmt.Sprintf("INSERT OR REPLACE INTO pops (node, region, addr) VALUES ('pop%d', 'eu', '198.51.100.%d:4001')", rng.IntN(3), 1+rng.IntN(9))
			} else {
				stmt = fmt.Sprintf("UPDATE backends SET wg_ip = '2001:db8::%x', port = %d WHERE id = '%s'", rng.IntN(4096), 80+rng.IntN(3), id)
			}
		}
		n, err := w.DBVersion(ctx)
		if err != nil {
			t.Fatal(err)
		}
		sql(stmt)
		if m, _ := w.DBVersion(ctx); m == n {
			continue // the statement matched no row: nothing to follow
		}
		if follow(stmt, i%3 != 1 || i > 70) {
			incremental++
		}
	}
	// A misspelled app makes names depend on other rows: whole builds
	// from then on, until it is gone.
	sql("UPDATE backends SET app = 'App1' WHERE id = (SELECT id FROM backends WHERE deleted = 0 LIMIT 1)")
	follow("misspelled app", true)
	if in.snap.Load().clean {
		t.Fatal("a table with an upper-case app is taken as clean")
	}
	sql("UPDATE backends SET weight = 9 WHERE app = 'App1'")
	follow("edit beside the misspelled app", true)
	t.Logf("%d edits followed name by name", incremental)
	if incremental < 40 {
		t.Fatalf("only %d of the edits were followed name by name", incremental)
	}
}

func str[T interface{ String() string }](l []T) []string {
	out := make([]string, len(l))
	for i, x := range l {
		out[i] = x.String()
	}
	return out
}

func at(l []string, i int) string {
	if i < len(l) {
		return l[i]
	}
	return "(none)"
}

// A health edit of one backend builds again its app's name, the app's names
// in its region, its region's and its own, and leaves the app's names in
// its other regions, its nearest names (which answer from the app's name)
// and every other app's as they were: an edit costs the names it changes.
func TestHealthEditKeepsTheAppsOtherRegions(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "routing.db")
	writeTable(t, path, "")
	sqlite(t, path, `INSERT INTO backends (id, app, region, country, wg_ip, port) VALUES
		('w1', 'web', 'eu', 'DE', '10.0.0.1', 80), ('w2', 'web', 'eu', 'DE', '10.0.0.2', 80),
		('w3', 'web', 'us', 'US', '10.0.0.3', 80), ('w4', 'web', 'us', 'US', '10.0.0.4', 80),
		('a1', 'api', 'eu', 'DE', '10.0.1.1', 80), ('a2', 'api', 'us', 'US', '10.0.1.2', 80);`)

	in := newFollower(t, path, "internal.")
	got := make(chan delivery, 4)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go in.store.Watch(wctx, store.Watcher{OnDelta: func(t *routing.Table, d store.Delta, _ []string) { got <- delivery{t, d} }})
	next := func() delivery {
		t.Helper()
		select {
		case dl := <-got:
			return dl
		case <-time.After(5 * time.Second):
			t.Fatal("no snapshot within 5 s")
		}
		return delivery{}
	}
	first := next()
	if err := in.follow(ctx, first.t, first.d, nil); err != nil {
		t.Fatal(err)
	}
	nodeOf := func(s *snapshot, name string) *node {
		t.Helper()
		n := s.zones[0].names.get(name)
		if n == nil {
			t.Fatalf("no %s", name)
		}
		return n
	}
	addrs := func(s *snapshot, name string) []string {
		var out []string
		for _, rr := range s.zones[0].names.records(nodeOf(s, name)).a {
			out = append(out, rr.(*dns.A).A.String())
		}
		sort.Strings(out)
		return out
	}
	before := in.snap.Load()

	sqlite(t, path, `UPDATE backends SET healthy = 0 WHERE id = 'w1'`)
	dl := next()
	if _, followed := rebuild(in.build, before, dl.t, dl.d, nil); !followed {
		t.Fatal("a health edit was built whole")
	}
	// An edit in place: the app's lists are the snapshot's before, with
	// the edited row's new self in its place, not a pass over the app.
	lists, ok := listsInPlace(dl.t, before.table, "web", appRegionSet{{"web", "eu"}}, small{"w1"}, before)
	if !ok {
		t.Fatal("a health edit did not patch the app's lists")
	}
	pass, _ := appRegionsOf(dl.t.App("web"), "web", appRegionSet{{"web", "eu"}})
	if !slices.Equal(lists.live, pass.live) || len(lists.regions) != 1 || !slices.Equal(lists.regions[0].backends, pass.regions[0].backends) ||
		!slices.Equal(lists.txt, []string{"eu,us"}) {
		t.Fatalf("patched lists %v, %+v, %v; a pass over the app gives %v, %+v", lists.live, lists.regions, lists.txt, pass.live, pass.regions)
	}
	if err := in.follow(ctx, dl.t, dl.d, nil); err != nil {
		t.Fatal(err)
	}
	after := in.snap.Load()
	for name, want := range map[string][]string{
		"web.internal.":             {"10.0.0.2", "10.0.0.3", "10.0.0.4"},
		"eu.web.internal.":          {"10.0.0.2"},
		"web.eu.services.internal.": {"10.0.0.2"},
		"us.web.internal.":          {"10.0.0.3", "10.0.0.4"},
		"eu.backends.internal.":     {"10.0.0.2", "10.0.1.1"},
		// Kept from before, answering from the app's new records.
		"top10.nearest.of.web.internal.": {"10.0.0.2", "10.0.0.3", "10.0.0.4"},
	} {
		if got := addrs(after, name); !reflect.DeepEqual(got, want) {
			t.Errorf("%s answers %v after w1 went unhealthy, want %v", name, got, want)
		}
	}
	for _, name := range []string{"web.internal.", "eu.web.internal.", "web.eu.services.internal.", "eu.backends.internal.", "w1.eu.backends.internal."} {
		if nodeOf(after, name) == nodeOf(before, name) {
			t.Errorf("%s was kept from the snapshot before the edit", name)
		}
	}
	if got, want := addrs(before, "top10.nearest.of.web.internal."), []string{"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"}; !reflect.DeepEqual(got, want) {
		t.Errorf("top10.nearest.of.web.internal. answered %v before the edit, want %v", got, want)
	}
	for _, name := range []string{"us.web.internal.", "web.us.services.internal.", "us.backends.internal.", "api.internal.", "eu.api.internal.", "w2.eu.backends.internal.",
		"of.web.internal.", "nearest.of.web.internal.", "top1.nearest.of.web.internal.", "top10.nearest.of.web.internal."} {
		if nodeOf(after, name) != nodeOf(before, name) {
			t.Errorf("%s was built again for an edit of a backend it does not list", name)
		}
	}
}
