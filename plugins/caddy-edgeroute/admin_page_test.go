package edgeroute

import (
	"fmt"
	"math/rand/v2"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/edgeproxy/edgeproxy/routing"
)

// Walking the pages lists every backend the filter keeps once, in ID
// order, whatever the limit and the table order; a page ends the list
// exactly when no backend is left after it.
func TestPagesListEveryBackendOnceInIDOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var all []*routing.Backend // unique IDs, in no order
	for i, n := range r.Perm(100000)[:500] {
		all = append(all, &routing.Backend{ID: fmt.Sprintf("b-%05d", n), App: fmt.Sprint("app", i%3)})
	}
	keep := func(b *routing.Backend) bool { return b.App != "app1" }
	var want []string
	for _, b := range all {
		if keep(b) {
			want = append(want, b.ID)
		}
	}
	slices.Sort(want)
	for _, limit := range []int{1, 7, 100, len(want) - 1, len(want), len(want) + 1, 0} {
		var got []string
		p := pageQuery{paged: true, limit: limit}
		for pages := 0; ; pages++ {
			page, next := p.page(all, keep)
			for _, b := range page {
				got = append(got, b.ID)
			}
			if limit > 0 && len(page) > limit {
				t.Fatalf("limit %d: a page of %d", limit, len(page))
			}
			if next == "" {
				break
			}
			if next != page[len(page)-1].ID || pages > len(want) {
				t.Fatalf("limit %d: next %q after a page ending %q", limit, next, page[len(page)-1].ID)
			}
			p.after = next
		}
		if !slices.Equal(got, want) {
			t.Fatalf("limit %d: the pages listed %d backends, want %d in ID order", limit, len(got), len(want))
		}
	}
	// After the last ID, and after an ID no backend has (one deleted
	// since): the list goes on from where that ID would sort.
	if page, next := (pageQuery{paged: true, limit: 5, after: want[len(want)-1]}).page(all, keep); len(page) != 0 || next != "" {
		t.Fatalf("after the last ID: %d backends, next %q", len(page), next)
	}
	gone := want[10] + "-deleted"
	if page, _ := (pageQuery{paged: true, limit: 2, after: gone}).page(all, keep); len(page) != 2 || page[0].ID != want[11] {
		t.Fatalf("after %q: %v", gone, page)
	}
}

func TestPageQueryRefusesABadLimit(t *testing.T) {
	for _, v := range []string{"0", "-3", "ten", ""} {
		_, err := parsePage(url.Values{"limit": {v}})
		if err == nil || !strings.Contains(err.Error(), "query parameter limit") || !strings.Contains(err.Error(), fmt.Sprintf("%q", v)) {
			t.Errorf("limit=%q: %v", v, err)
		}
	}
	if p, err := parsePage(url.Values{"after": {"x"}}); err != nil || !p.paged || p.limit != 0 || p.after != "x" {
		t.Errorf("after alone: %+v %v", p, err)
	}
	if p, err := parsePage(url.Values{}); err != nil || p.paged {
		t.Errorf("no paging: %+v %v", p, err)
	}
}

// BenchmarkPage is the selection of one page of 1,000 out of a table of
// 100,000 backends in table order, as GET /edgeroute/backends?limit=1000
// makes it before writing the page out.
func BenchmarkPage(b *testing.B) {
	r := rand.New(rand.NewPCG(3, 4))
	all := make([]*routing.Backend, 0, 100000)
	for _, n := range r.Perm(100000) {
		all = append(all, &routing.Backend{ID: fmt.Sprintf("backend-%06d", n), App: "app"})
	}
	keep := func(*routing.Backend) bool { return true }
	p := pageQuery{paged: true, limit: 1000, after: "backend-050000"}
	for b.Loop() {
		if page, next := p.page(all, keep); len(page) != 1000 || next != "backend-051000" {
			b.Fatalf("%d backends, next %q", len(page), next)
		}
	}
}
