package edgeroute

import (
	"net/url"
	"slices"
	"strings"

	"github.com/edgeproxy/edgeproxy/pop"
)

// popFilter is the apps a GET /edgeroute/pop names with app= (repeated, or
// a comma-separated list); nil: every app. A watcher of one app among
// thousands gets that app's line when it changes, not every app at every
// change of any.
type popFilter []string

func popFilterOf(q url.Values) popFilter {
	var f popFilter
	for _, v := range q["app"] {
		for name := range strings.SplitSeq(v, ",") {
			if name = strings.TrimSpace(name); name != "" && !slices.Contains(f, name) {
				f = append(f, name)
			}
		}
	}
	return f
}

// apps is what the view shows of s: every app, or those of the filter's
// apps the table has.
func (f popFilter) apps(s pop.AppSignals) map[string]pop.AppSignal {
	if f == nil {
		return s.Map()
	}
	m := make(map[string]pop.AppSignal, len(f))
	for _, name := range f {
		if a, ok := s.Get(name); ok {
			m[name] = a
		}
	}
	return m
}

// same reports whether x and y say the same through the filter: the POP's
// state, and the filter's apps (or their absence).
func (f popFilter) same(x, y pop.Signal) bool {
	if !x.SameState(y) {
		return false
	}
	for _, name := range f {
		a, okA := x.Apps.Get(name)
		b, okB := y.Apps.Get(name)
		if okA != okB || a != b {
			return false
		}
	}
	return true
}
