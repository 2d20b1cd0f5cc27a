package edgeroute

import (
	"container/heap"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/edgeproxy/edgeproxy/routing"
)

// Pages of GET /edgeroute/backends. At 100,000 backends the whole table is
// some 45 MB of JSON. With limit or after, the backends come in ID order,
// at most limit of them, from the first ID after after; the answer's next
// is the after of the page that follows. ID order, not table order: a page
// resumes after an ID whether or not that backend has been deleted since.

// pageQuery is the paging GET /edgeroute/backends asked for.
type pageQuery struct {
	paged bool   // limit or after given: ID order
	after string // only IDs that sort after this one
	limit int    // at most this many; 0 for all
}

func parsePage(q url.Values) (pageQuery, error) {
	var p pageQuery
	if q.Has("after") {
		p.paged, p.after = true, q.Get("after")
	}
	if q.Has("limit") {
		v := q.Get("limit")
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return p, apiErr(http.StatusBadRequest, "query parameter limit: %q is not a positive number of backends", v)
		}
		p.paged, p.limit = true, n
	}
	return p, nil
}

// page returns, in ID order, the backends of all that keep takes and whose
// ID sorts after p.after, at most p.limit of them, and the after of the
// next page ("" when this one ends the list). It keeps the limit lowest
// IDs as it goes rather than sorting the table.
func (p pageQuery) page(all []*routing.Backend, keep func(*routing.Backend) bool) ([]*routing.Backend, string) {
	var lowest idHeap
	more := false
	for _, b := range all {
		if b.ID <= p.after || !keep(b) {
			continue
		}
		switch {
		case p.limit == 0 || len(lowest) < p.limit:
			heap.Push(&lowest, b)
		case b.ID < lowest[0].ID:
			lowest[0] = b
			heap.Fix(&lowest, 0)
			more = true
		default:
			more = true
		}
	}
	out := []*routing.Backend(lowest)
	slices.SortFunc(out, func(a, b *routing.Backend) int { return strings.Compare(a.ID, b.ID) })
	if !more || len(out) == 0 {
		return out, ""
	}
	return out, out[len(out)-1].ID
}

// idHeap holds backends with the highest ID on top.
type idHeap []*routing.Backend

func (h idHeap) Len() int           { return len(h) }
func (h idHeap) Less(i, j int) bool { return h[i].ID > h[j].ID }
func (h idHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *idHeap) Push(x any)        { *h = append(*h, x.(*routing.Backend)) }
func (h *idHeap) Pop() any {
	old := *h
	b := old[len(old)-1]
	*h = old[:len(old)-1]
	return b
}
