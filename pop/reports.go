package pop

import (
	"sort"
	"sync"
)

// Report is one app's section of the POP's status: what its report
// function returned when the status was read.
type Report struct {
	Name  string `json:"name"`
	Value any    `json:"value"`
}

// reports holds the report functions other apps registered with the POP.
// Apps that run beside edgeroute (bgp, wg6pn) show their state on the
// POP's status page this way without the page importing them.
type reports struct {
	mu   sync.Mutex
	next uint64
	fns  map[string]reportFn
}

type reportFn struct {
	id uint64
	f  func() any
}

// Report registers f under name; the POP's status calls it on every read.
// A later registration under the same name replaces the earlier one (a
// Caddy reload provisions the new app before the old one stops), and
// remove takes away only the registration it came with.
func (rt *Runtime) Report(name string, f func() any) (remove func()) {
	r := &rt.reports
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fns == nil {
		r.fns = map[string]reportFn{}
	}
	r.next++
	id := r.next
	r.fns[name] = reportFn{id: id, f: f}
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if cur, ok := r.fns[name]; ok && cur.id == id {
			delete(r.fns, name)
		}
	}
}

// Reports calls every registered report function, outside the lock, and
// returns their values sorted by name.
func (rt *Runtime) Reports() []Report {
	r := &rt.reports
	r.mu.Lock()
	names := make([]string, 0, len(r.fns))
	fns := make(map[string]func() any, len(r.fns))
	for n, fn := range r.fns {
		names = append(names, n)
		fns[n] = fn.f
	}
	r.mu.Unlock()
	sort.Strings(names)
	out := make([]Report, 0, len(names))
	for _, n := range names {
		out = append(out, Report{Name: n, Value: fns[n]()})
	}
	return out
}
