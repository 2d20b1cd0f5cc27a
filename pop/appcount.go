package pop

import (
	"fmt"
	"sort"
	"strings"

	"github.com/edgeproxy/edgeproxy/routing"
)

// appSignals counts each app's routable backends and says why the others
// are not. With a previous table and its counts, apps whose backend list
// that table shares keep their counts, and the result shares them with
// prevApps: a one-row edit recounts one app, whatever the number of apps.
// The loads must be as they were when prevApps was counted (no verdict,
// no backend at or leaving its hard limit since): an app edited in place,
// or grown at its end, then patches its count with the backends the edit
// replaced or added, without a look at the others.
func appSignals(tbl, prev *routing.Table, prevApps AppSignals) AppSignals {
	var gone []string
	var put []namedSignal
	// App by app, so a pass over a large table looks up no map per
	// backend: the signal is recomputed after every snapshot.
	for _, app := range tbl.AppsEditedSince(prev) {
		backends := tbl.App(app)
		if len(backends) == 0 {
			gone = append(gone, app) // gone from the table
			continue
		}
		if prev != nil {
			if was, ok := prevApps.idx.Get(app); ok && was.tally.counted {
				if t, ok := was.tally.patched(prev.App(app), backends); ok {
					put = append(put, namedSignal{app, t.signal(), t})
					continue
				}
			}
		}
		t := tallyOf(backends)
		put = append(put, namedSignal{app, t.signal(), t})
	}
	if prev == nil {
		prevApps = AppSignals{}
	}
	return prevApps.with(gone, put)
}

// why is why a live backend is not routable, or notWhy for one that is.
type why uint8

const (
	notWhy why = iota
	whyUnhealthy
	whyNoAddress
	whyFailingChecks
	whyEjected
	whyDown
	whyAtHardLimit
	whys
)

var whyText = [whys]string{
	whyUnhealthy:     "marked unhealthy in the table",
	whyNoAddress:     "no valid address",
	whyFailingChecks: "failing active health checks",
	whyEjected:       "ejected after connection failures",
	whyDown:          "down",
	whyAtHardLimit:   "at hard limit",
}

// whyOf is why b is not routable (notWhy: it is), or live false for a
// deleted backend, which the app's signal does not count.
func whyOf(b *routing.Backend) (w why, live bool) {
	switch {
	case b.Deleted:
		return notWhy, false
	case !b.Healthy:
		return whyUnhealthy, true
	case !b.Addr.IsValid():
		return whyNoAddress, true
	case b.Load != nil && b.Load.DownReasons()&routing.DownActive != 0:
		return whyFailingChecks, true
	case b.Load != nil && b.Load.DownReasons()&routing.DownEjected != 0:
		return whyEjected, true
	case b.Load != nil && b.Load.Down():
		return whyDown, true
	case b.AtHardLimit():
		return whyAtHardLimit, true
	}
	return notWhy, true
}

// appTally is an app's live backends counted by why: n[notWhy] are the
// routable ones. counted is false in a signal that was not counted here
// (read from JSON), which has nothing to patch.
type appTally struct {
	n       [whys]int32
	counted bool
}

// tallyOf counts backends, an app's list.
func tallyOf(backends []*routing.Backend) appTally {
	t := appTally{counted: true}
	for _, b := range backends {
		t.count(b, 1)
	}
	return t
}

// count adds d to the count of b's why, for a live backend.
func (t *appTally) count(b *routing.Backend, d int32) {
	if w, live := whyOf(b); live {
		t.n[w] += d
	}
}

// maxPatchedCount is how many replaced backends a count is patched for;
// more (a removal shifts every row after it) are counted again.
const maxPatchedCount = 8

// patched returns the tally of after, given t, the tally of before, when
// after is before with some backends replaced in place (the rest the very
// same rows at the same places) and perhaps others added at its end
// (registrations). The replaced ones' old rows are taken out, and their
// new rows and the added ones counted in: the loads are as they were when
// t was counted, so the old rows are as t counted them. A pass over two
// lists of pointers, instead of a look at every backend and its load.
func (t appTally) patched(before, after []*routing.Backend) (appTally, bool) {
	if len(after) < len(before) {
		return appTally{}, false
	}
	replaced := 0
	for i, b := range after[:len(before)] {
		if b == before[i] {
			continue
		}
		if replaced++; replaced > maxPatchedCount {
			return appTally{}, false
		}
		t.count(before[i], -1)
		t.count(b, 1)
	}
	for _, b := range after[len(before):] {
		t.count(b, 1)
	}
	return t, true
}

// signal says what t counts.
func (t appTally) signal() AppSignal {
	var a AppSignal
	for w, n := range t.n {
		a.Backends += int(n)
		if why(w) == notWhy {
			a.Routable = int(n)
		}
	}
	switch {
	case a.Backends == 0:
		a.Reason = "every backend of the app is deleted"
	case a.Routable < a.Backends:
		parts := make([]string, 0, whys)
		for w, n := range t.n {
			if why(w) != notWhy && n > 0 {
				parts = append(parts, fmt.Sprintf("%d %s", n, whyText[w]))
			}
		}
		sort.Strings(parts)
		a.Reason = fmt.Sprintf("%d of %d routable: %s", a.Routable, a.Backends, strings.Join(parts, ", "))
	}
	return a
}
