package internal

import (
	"slices"
	"sort"
	"strings"

	"github.com/edgeproxy/edgeproxy/routing"

	"github.com/miekg/dns"
)

// An edit's lists of an app: its live backends, and those in the regions
// whose names the edit builds again (see planPart).

// inRegion is an app's live backends in one of its regions, for a region
// whose names an edit builds (build); of the others only the name.
type inRegion struct {
	region   string
	build    bool
	backends []*routing.Backend
}

// appRegionsOf passes once over an app's backends (all, in table order)
// and returns its lists: its live backends, its regions in order of first
// appearance with the backends of those appRegions holds (one region, or
// two, of the app's, so only those lists grow as the pass goes), and the
// regions' TXT value. ok is false when the app has no live backend. A pass
// is a cache miss a backend, the cost of an edit of an app of a thousand.
func appRegionsOf(all []*routing.Backend, app string, appRegions appRegionSet) (appLists, bool) {
	// An app has few regions: found by a scan of those seen so far,
	// starting with the previous backend's, not a map (a hash per
	// backend).
	var regions []inRegion
	live := make([]*routing.Backend, 0, len(all))
	last := 0
	for _, b := range all {
		if b.Deleted {
			continue
		}
		live = append(live, b)
		if last >= len(regions) || regions[last].region != b.Region {
			last = slices.IndexFunc(regions, func(r inRegion) bool { return r.region == b.Region })
			if last < 0 {
				regions, last = append(regions, inRegion{region: b.Region, build: appRegions.has(app, b.Region)}), len(regions)
			}
		}
		if regions[last].build {
			regions[last].backends = append(regions[last].backends, b)
		}
	}
	if len(live) == 0 {
		return appLists{}, false
	}
	names := make([]string, len(regions))
	for i, r := range regions {
		names[i] = r.region
	}
	sort.Strings(names)
	return appLists{live: live, regions: regions, txt: []string{strings.Join(names, ",")}}, true
}

// plannedNode is the node the snapshot's first zone has for rel, or nil:
// what the snapshot planned for the name (its zones all hold the same
// plan).
func (s *snapshot) plannedNode(rel string) *node {
	if len(s.zones) == 0 {
		return nil
	}
	z0 := s.zones[0]
	return z0.names.get(z0.fqdn(rel))
}

// before returns what the snapshot planned for a name: a ranked name's
// backends, or a TXT name's values.
func (s *snapshot) before(rel string) ([]*routing.Backend, []string, bool) {
	switch n := s.plannedNode(rel); {
	case n == nil:
	case n.ranks != nil && n.ranks.orders != nil && n.ranks.orders.backends != nil:
		return n.ranks.orders.backends, nil, true
	case n.kind == kindTXT && len(n.def.txt) == 1:
		if t, ok := n.def.txt[0].(*dns.TXT); ok {
			return nil, t.Txt, true
		}
	}
	return nil, nil, false
}

// liveBefore returns the live backends the snapshot's <region>.backends
// listed.
func (s *snapshot) liveBefore(region string) (routing.Rows, bool) {
	if n := s.plannedNode(region + ".backends"); n != nil && n.list != nil {
		return n.list.live, true
	}
	return routing.Rows{}, false
}

// appLists is an app's live backends, its regions (those an edit builds
// marked build, with their backends), as planPart plans them, and its
// regions' TXT values.
type appLists struct {
	live    []*routing.Backend
	regions []inRegion
	txt     []string
}

// listsInPlace returns the app's lists after a change that edits its
// backends in place: each touched backend of the app is in it before and
// after, in the same region, live in both or deleted in both, and the app
// has as many rows as before. They are the lists the snapshot before
// (prev) planned, with each edited backend's row replaced by its new one:
// a pass over lists of pointers instead of a look at every backend of the
// app, a cache miss each. ok is false when the change is not such an
// edit, or the snapshot before lacks a list.
func listsInPlace(t, old *routing.Table, app string, appRegions appRegionSet, ids small, prev *snapshot) (appLists, bool) {
	if len(t.App(app)) != len(old.App(app)) {
		return appLists{}, false
	}
	var swaps [][2]*routing.Backend
	for _, id := range ids {
		bo, bn := old.Backend(id), t.Backend(id)
		if (bo == nil || bo.App != app) && (bn == nil || bn.App != app) {
			continue
		}
		if bo == nil || bn == nil || bo.App != bn.App || bo.Region != bn.Region || bo.Deleted != bn.Deleted {
			return appLists{}, false
		}
		if !bo.Deleted {
			swaps = append(swaps, [2]*routing.Backend{bo, bn})
		}
	}
	var l appLists
	live, _, ok := prev.before(app)
	if !ok {
		return appLists{}, false
	}
	if l.live, ok = swapped(live, swaps); !ok {
		return appLists{}, false
	}
	if _, l.txt, ok = prev.before("regions." + app); !ok {
		return appLists{}, false
	}
	for _, ar := range appRegions {
		if ar.app != app {
			continue
		}
		listed, _, ok := prev.before(ar.region + "." + app)
		if !ok {
			return appLists{}, false
		}
		var here [][2]*routing.Backend
		for _, sw := range swaps {
			if sw[0].Region == ar.region {
				here = append(here, sw)
			}
		}
		r := inRegion{region: ar.region, build: true}
		if r.backends, ok = swapped(listed, here); !ok {
			return appLists{}, false
		}
		l.regions = append(l.regions, r)
	}
	return l, true
}

// swapped returns a copy of list with each swap's first row replaced by
// its second; ok is false when list lacks one of them (it was not planned
// from the table before).
func swapped(list []*routing.Backend, swaps [][2]*routing.Backend) ([]*routing.Backend, bool) {
	out := slices.Clone(list)
	for _, s := range swaps {
		i := slices.Index(out, s[0])
		if i < 0 {
			return nil, false
		}
		out[i] = s[1]
	}
	return out, true
}
