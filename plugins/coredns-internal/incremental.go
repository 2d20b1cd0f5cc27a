package internal

import (
	"sort"
	"sync"

	"github.com/edgeproxy/edgeproxy/internal/shardindex"
	"github.com/edgeproxy/edgeproxy/routing"
	"github.com/edgeproxy/edgeproxy/store"

	"github.com/miekg/dns"
)

// Following a change without building every name again.
//
// Each name of a zone belongs to a group: an app's names (<app>,
// regions.<app>) depend only on that app's backends; an app's names in one
// region (<region>.<app>, <app>.<region>.services) on its backends there;
// a region's (<region>.backends, <region>.services) on the backends in it;
// a backend's own <id>.<region>.backends on that backend. A change of some
// backend rows, or of their health, rebuilds the groups of those backends,
// as the table had them and as it has them now, and the next snapshot
// shares every other name with the one before. The zone's fixed names,
// _apps, the POPs' names and an app's of, nearest.of and top<n>.nearest
// names are built again only by a whole build: when the POPs changed, an
// app appeared or went, or some name depends on another row's spelling
// (see snapshot.clean).

func appGroup(app string) string               { return "a/" + app }
func appRegionGroup(app, region string) string { return "ar/" + app + "/" + region }
func regionGroup(region string) string         { return "r/" + region }
func backendGroup(id string) string            { return "b/" + id }
func isBackendGroup(group string) bool         { return len(group) > 2 && group[:2] == "b/" }
func backendName(id, region string) string     { return id + "." + region + ".backends" }

// cleanRow reports whether a live backend's names depend on nothing but
// its own row: app, region and ID are lower-case DNS labels already, and
// neither the app nor the region is a reserved label.
func cleanRow(b *routing.Backend) bool {
	app, ok1 := label(b.App)
	region, ok2 := label(b.Region)
	id, ok3 := label(b.ID)
	return ok1 && ok2 && ok3 && app == b.App && region == b.Region && id == b.ID && !reserved[app] && !appReserved[region]
}

// groupNames lists the names of each app and region group of a zone
// (a backend's one name is known from its row). A snapshot's is never
// changed; the next one shares the groups a change leaves (see
// shardindex) rather than copying a map of every app and region.
type groupNames struct{ shardindex.Index[*nameGroup] }

// nameGroup is one group's names.
type nameGroup struct {
	group string
	names []string
}

// groupsPerShard: a hundred apps make a few dozen small shards.
const groupsPerShard = 4

func nameGroupKey(g *nameGroup) string { return g.group }

func newGroupNames(c groupCollector) groupNames {
	return groupNames{shardindex.Build(c.list(), groupsPerShard, nameGroupKey)}
}

// names returns the names group brought.
func (g groupNames) names(group string) []string {
	if ng, ok := g.Get(group); ok {
		return ng.names
	}
	return nil
}

// with returns the groups without those in replaced, and with c's.
func (g groupNames) with(replaced []string, c groupCollector) groupNames {
	return groupNames{g.With(replaced, c.list())}
}

// groupCollector gathers the names of the app and region groups as a build
// makes them.
type groupCollector map[string]*nameGroup

func (c groupCollector) add(group, name string) {
	if group == "" || isBackendGroup(group) {
		return
	}
	g := c[group]
	if g == nil {
		g = &nameGroup{group: group}
		c[group] = g
	}
	g.names = append(g.names, name)
}

func (c groupCollector) list() []*nameGroup {
	l := make([]*nameGroup, 0, len(c))
	for _, g := range c {
		l = append(l, g)
	}
	return l
}

// axfrList is the zone's names that have records, in name order: made
// by a whole build, or sorted at the first transfer of a snapshot that
// followed a change.
type axfrList struct {
	once  sync.Once
	done  bool
	from  nameIndex
	nodes []*node
}

func (a *axfrList) list() []*node {
	if a.done {
		return a.nodes
	}
	a.once.Do(func() {
		var out []*node
		a.from.Each(func(n *node) {
			if a.from.hasRecords(n) {
				out = append(out, n)
			}
		})
		sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
		a.nodes = out
	})
	return a.nodes
}

// small is a set of a few strings, looked up by comparison.
type small []string

func (s *small) add(v string) {
	for _, x := range *s {
		if x == v {
			return
		}
	}
	*s = append(*s, v)
}

func (s small) has(v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// appRegion is an app's backends in one region, a group of their own
// (appRegionGroup).
type appRegion struct{ app, region string }

// appRegionSet is a few appRegions, looked up by comparison: an edit's
// check of each of its app's regions costs no group name.
type appRegionSet []appRegion

func (s *appRegionSet) add(app, region string) {
	if !s.has(app, region) {
		*s = append(*s, appRegion{app, region})
	}
}

func (s appRegionSet) has(app, region string) bool {
	for _, x := range s {
		if x.app == app && x.region == region {
			return true
		}
	}
	return false
}

// liveApp reports whether the app has a backend that is not deleted: one
// with names, listed under _apps.
func liveApp(t *routing.Table, app string) bool {
	for _, b := range t.App(app) {
		if !b.Deleted {
			return true
		}
	}
	return false
}

// rebuild builds the snapshot of t from prev, which was built from the
// table before d, by building again only the groups d touches. ok is false
// when only a whole build can say what changed.
func rebuild(cfg buildConfig, prev *snapshot, t *routing.Table, d store.Delta, down map[string]bool) (*snapshot, bool) {
	if prev == nil || !prev.clean || d.Full || d.Pops {
		return nil, false
	}
	old := prev.table
	var apps, regions, ids small
	var appRegions appRegionSet
	var oldRows []*routing.Backend // the touched backends as prev had them
	touch := func(id string) bool {
		ids.add(id)
		for _, tb := range []*routing.Table{old, t} {
			b := tb.Backend(id)
			if b == nil || b.Deleted {
				continue
			}
			if !cleanRow(b) {
				return false
			}
			apps.add(b.App)
			appRegions.add(b.App, b.Region)
			regions.add(b.Region)
			if tb == old {
				oldRows = append(oldRows, b)
			}
		}
		return true
	}
	for _, list := range [][]string{d.Backends, d.Health} {
		for _, id := range list {
			if !touch(id) {
				return nil, false
			}
		}
	}
	for _, app := range apps {
		if liveApp(old, app) != liveApp(t, app) {
			return nil, false // _apps changes
		}
	}
	only := map[string]bool{}
	for _, a := range apps {
		only[appGroup(a)] = true
	}
	for _, ar := range appRegions {
		only[appRegionGroup(ar.app, ar.region)] = true
	}
	for _, r := range regions {
		only[regionGroup(r)] = true
	}
	for _, id := range ids {
		only[backendGroup(id)] = true
	}
	p := planPart(t, old, apps, appRegions, regions, ids, prev)
	// The backends whose records cannot come from the snapshot before:
	// rows the change wrote, and rows whose health it changed.
	fresh := map[*routing.Backend]bool{}
	for _, id := range ids {
		if b := t.Backend(id); b != nil {
			fresh[b] = true
		}
	}
	s := &snapshot{serial: uint32(t.Generation), loadedAt: t.LoadedAt, table: t, down: down, clean: true}
	for _, pz := range prev.zones {
		z := *pz
		soa := *pz.soa
		soa.Serial = s.serial
		z.soa = &soa
		zb := &zoneBuilder{cfg: cfg, z: &z, down: down, targets: map[*routing.Backend]string{}, glue: map[*routing.Backend]dns.RR{},
			prev: pz, fresh: fresh}
		zb.setup(p)
		var gone []string
		replaced := make([]string, 0, len(only))
		for g := range only {
			replaced = append(replaced, g)
			gone = append(gone, pz.groups.names(g)...)
		}
		for _, b := range oldRows {
			gone = append(gone, zb.fqdn(backendName(b.ID, b.Region)))
		}
		var add []*node
		groups := groupCollector{}
		for _, e := range p.entries {
			if n := zb.node(e, p); n != nil {
				add = append(add, n)
				groups.add(e.group, n.name)
			}
		}
		z.names, z.groups = pz.names.with(gone, add), pz.groups.with(replaced, groups)
		z.axfr = &axfrList{from: z.names}
		s.zones = append(s.zones, &z)
	}
	return s, true
}

// planPart plans the names of the given apps, apps in regions, regions and
// backends of a clean table (see snapshot.clean): what newPlan plans for
// their groups, without the checks a clean table passes by definition.
//
// A region's list comes from the snapshot before (prev) and the table it
// was built from (old) where the change allows (see regionList); else
// from a pass over t. An app's lists come from prev when the change edits
// its backends in place (see listsInPlace); else from a pass over the
// app's backends.
func planPart(t, old *routing.Table, apps small, appRegions appRegionSet, regions, ids small, prev *snapshot) *plan {
	p := &plan{targets: targetNames{byName: true}, clean: true}
	// Every name planned here is one of these: no entry is allocated
	// alone, and none moves once planned.
	entries := make([]entry, 0, 2*len(apps)+2*len(appRegions)+2*len(regions)+len(ids))
	p.entries = make([]*entry, 0, cap(entries))
	add := func(group, rel string, k kind, backends []*routing.Backend) *entry {
		entries = append(entries, entry{rel: rel, kind: k, group: group, backends: backends})
		e := &entries[len(entries)-1]
		p.entries = append(p.entries, e)
		return e
	}
	for _, app := range apps {
		l, ok := listsInPlace(t, old, app, appRegions, ids, prev)
		if !ok {
			if l, ok = appRegionsOf(t.App(app), app, appRegions); !ok {
				continue // no live backend: no names
			}
		}
		g := appGroup(app)
		add(g, app, kindApp, l.live)
		for _, r := range l.regions {
			if r.build {
				ar := appRegionGroup(app, r.region)
				add(ar, r.region+"."+app, kindAppRegion, r.backends)
				add(ar, app+"."+r.region+".services", kindService, r.backends)
			}
		}
		add(g, "regions."+app, kindTXT, nil).txt = l.txt
	}
	if len(regions) > 0 {
		lists := make([]routing.Rows, len(regions))
		scan := false
		for i, r := range regions {
			if before, ok := prev.liveBefore(r); ok {
				lists[i], ok = regionList(before, r, old, t, ids)
				scan = scan || !ok
			} else {
				scan = true
			}
		}
		if scan {
			found := make([][]*routing.Backend, len(regions))
			for b := range t.Rows().All() {
				if b.Deleted {
					continue
				}
				for i, r := range regions {
					if b.Region == r {
						found[i] = append(found[i], b)
						break
					}
				}
			}
			for i := range lists {
				lists[i] = routing.RowsOf(found[i])
			}
		}
		for i, r := range regions {
			if lists[i].Len() > 0 {
				g := regionGroup(r)
				add(g, r+".backends", kindBackends, nil).list = lists[i]
				add(g, r+".services", kindEmpty, nil)
			}
		}
	}
	for _, id := range ids {
		if b := t.Backend(id); b != nil && !b.Deleted {
			add(backendGroup(id), backendName(b.ID, b.Region), kindBackend, []*routing.Backend{b})
		}
	}
	return p
}
