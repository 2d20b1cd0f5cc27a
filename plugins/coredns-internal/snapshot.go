package internal

import (
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/edgeproxy/edgeproxy/routing"

	"github.com/miekg/dns"
)

// snapshot is everything a query needs, built once per routing table and
// published with an atomic swap. Nothing in it changes after build: queries
// read it without a lock, and the records it holds are shared between
// answers (as the file plugin shares its zone's records).
type snapshot struct {
	zones    []*zone // longest origin first, so a query matches the most specific zone
	serial   uint32
	loadedAt time.Time

	// What the records were built from, for the next snapshot to build
	// only the names a change touches (incremental.go).
	table *routing.Table
	down  map[string]bool
	// clean: every live backend's app, region and ID is already a
	// lower-case DNS label of its own, no app or region is reserved, and
	// no row produced a warning, so no name depends on another app's or
	// backend's spelling.
	clean bool
}

// zone is one origin the plugin is authoritative for, with every name in it.
type zone struct {
	origin string // lower-case FQDN, "internal."
	dotted string // "." + origin, the suffix of every name below the apex ("" for the root)
	soa    *dns.SOA
	ns     *dns.NS
	nsGlue []dns.RR   // the NS's address records, for the additional section
	names  nameIndex  // lower-case FQDN -> node; every name that exists
	axfr   *axfrList  // nodes with records, in name order
	groups groupNames // which names each app, region and backend brought (incremental.go)
}

// match returns the zone lname (a lower-case FQDN) belongs to, or nil.
func (s *snapshot) match(lname string) *zone {
	for _, z := range s.zones {
		if lname == z.origin || strings.HasSuffix(lname, z.dotted) {
			return z
		}
	}
	return nil
}

// zone returns the zone whose origin is exactly origin, or nil.
func (s *snapshot) zone(origin string) *zone {
	for _, z := range s.zones {
		if z.origin == origin {
			return z
		}
	}
	return nil
}

// kind is what a name stands for. It decides which records a name carries
// and labels the records-served metric.
type kind uint8

const (
	kindApex      kind = iota // the zone origin: SOA, NS
	kindEmpty                 // a fixed part of the namespace without records: backends., services., <region>.services. ...
	kindApp                   // <app>.
	kindService               // <app>.<region>.services.
	kindBackends              // <region>.backends.
	kindBackend               // <id>.<region>.backends.
	kindPops                  // <region>.pops.
	kindAppRegion             // <region>.<app>.
	kindNearest               // top<n>.nearest.of.<app>.
	kindTXT                   // regions.<app>., _apps.
	kindNS                    // ns.dns.: the apex NS's address
	numKinds
)

var kindNames = [numKinds]string{"apex", "empty", "app", "service", "backends", "backend", "pops", "app_region", "nearest", "txt", "ns"}

func (k kind) String() string { return kindNames[k] }

// rrset holds the prebuilt records of one name for one class of clients.
type rrset struct {
	a, aaaa, srv []dns.RR
	txt          []dns.RR
	glue         []dns.RR // A/AAAA records of the SRV targets, for the additional section
}

var emptySet = &rrset{}

// node is one name of the zone.
type node struct {
	name string // canonical owner name, lower case
	kind kind
	// def holds the records of a name that is not ranked, in table order.
	def *rrset
	// ranks holds a ranked name's (apps and services) records. They list
	// its backends best first for the client. A client's order only
	// depends on its country, and only on the countries and regions the
	// name's backends are in, so every order a query can ask for is known
	// from the name's backends: by the client's country when a backend is
	// in it, else by the client's region when a backend is in that, else
	// the order for a client of unknown location.
	ranks *ranking
	// list holds a <region>.backends name's records.
	list *listing
	// app and top, for a top<n>.nearest.of.<app> name: its app's name
	// (FQDN) and n. Its records are the first n of the app's, found
	// through the zone's index at the ask (nameIndex.rankingOf), so an
	// edit of the app's backends leaves the name as it was.
	app string
	top int
}

// rankingOf returns a ranked name's records: its own, or for a
// top<n>.nearest name those its app's name derives; nil for a name that is
// not ranked.
func (x nameIndex) rankingOf(n *node) *ranking {
	if n.kind != kindNearest {
		return n.ranks
	}
	if app := x.get(n.app); app != nil && app.ranks != nil {
		return app.ranks.nearest(n.top, n.name)
	}
	return nil
}

// records returns the name's records in table order, or for a ranked name
// in the order for a client of unknown location.
func (x nameIndex) records(n *node) *rrset {
	if r := x.rankingOf(n); r != nil {
		return r.sets().def
	}
	return n.unranked()
}

// unranked returns the records of a name that is not ranked.
func (n *node) unranked() *rrset {
	if n.list != nil {
		return n.list.sets().def
	}
	return n.def
}

// buildConfig is what record building needs from the plugin's configuration.
type buildConfig struct {
	zones   []string // lower-case FQDNs
	ttl     uint32
	scorer  routing.Scorer
	regions routing.RegionMap
	// nsAddrs are the addresses of ns.dns.<zone>, the apex NS; empty: the
	// POPs' own 6PN addresses (see nsAddresses).
	nsAddrs []netip.Addr
	// published is the snapshot in service, whose address records the
	// records written after a build share (see sharedTarget); nil: none
	// are shared.
	published *atomic.Pointer[snapshot]
}

// maxNearest is the largest n of the top<n>.nearest.of.<app> names.
const maxNearest = 10

// SOA timers. The data changes within seconds, so a secondary that pulls the
// zone with AXFR should come back often; expire keeps it answering for a day
// if this server goes away.
const (
	soaRefresh = 60
	soaRetry   = 10
	soaExpire  = 86400
)

// Labels that structure the zone. An app cannot use them as its name.
var reserved = map[string]bool{"backends": true, "services": true, "pops": true, "dns": true, "_apps": true}

// Labels under an app that are not regions: a region named so has no
// <region>.<app> name.
var appReserved = map[string]bool{"regions": true, "of": true}

// build turns a routing table into the records of every zone. down holds the
// IDs of backends the health rows report down. It returns the snapshot and
// one line for each row that cannot be served under its name.
func build(cfg buildConfig, t *routing.Table, down map[string]bool) (*snapshot, []string) {
	p := newPlan(t, t.Backends(), nil)
	s := &snapshot{serial: uint32(t.Generation), loadedAt: t.LoadedAt, table: t, down: down, clean: p.clean && len(p.warnings) == 0}
	for _, origin := range cfg.zones {
		s.zones = append(s.zones, buildZone(cfg, origin, s.serial, p, down))
	}
	sort.SliceStable(s.zones, func(i, j int) bool { return len(s.zones[i].origin) > len(s.zones[j].origin) })
	return s, p.warnings
}

// plan is the zone's content relative to its origin, worked out once per
// table and then written out for each configured zone.
type plan struct {
	sixpn    []netip.Addr // the POPs' own 6PN addresses (::1 of their prefixes)
	popAddrs []netip.Addr // the POPs' host addresses
	entries  []*entry
	targets  targetNames
	warnings []string
	clean    bool // see snapshot.clean
}

// targetNames are the backends' SRV targets, "<id>.<region>.backends".
type targetNames struct {
	// byName: every live backend's target is <id>.<region>.backends as
	// its row spells them (a plan of a clean table's changed part), and
	// of is not filled.
	byName bool
	of     map[*routing.Backend]string
}

// target returns the SRV target of b relative to the origin, if it has one.
func (t targetNames) target(b *routing.Backend) (string, bool) {
	if t.byName {
		return backendName(b.ID, b.Region), true
	}
	rel, ok := t.of[b]
	return rel, ok
}

// entry is a name relative to the origin ("web", "eu.backends") and what it
// holds: backends (table order; deleted ones are never listed) or POP
// addresses.
type entry struct {
	rel      string
	kind     kind
	group    string // the app, region or backend the name belongs to ("" for the zone's fixed names)
	backends []*routing.Backend
	list     routing.Rows // kindBackends, planned from a change: the backends, not in backends
	addrs    []netip.Addr
	top      int      // kindNearest: how many backends
	app      string   // kindNearest: the app's name
	txt      []string // kindTXT: the values, one string
}

// newPlan works out the names of backends (the table's, in table order).
// With only set it plans just the names of the groups only holds (see
// appGroup), from backends that include every backend of those groups,
// and leaves out the zone's fixed names, _apps and the POPs: the part of a
// zone a change touches.
func newPlan(t *routing.Table, backends []*routing.Backend, only map[string]bool) *plan {
	p := &plan{targets: targetNames{of: map[*routing.Backend]string{}}, clean: true}
	index := map[string]*entry{}
	var group string // the group of the names add creates
	add := func(rel string, k kind) *entry {
		e := index[rel]
		if e == nil {
			e = &entry{rel: rel, kind: k, group: group}
			index[rel] = e
			if only == nil || only[group] {
				p.entries = append(p.entries, e)
			}
		}
		return e
	}
	if only == nil {
		for _, rel := range []string{"backends", "services", "pops", "dns", "ns.dns"} {
			add(rel, kindEmpty)
		}
	}

	seenApp := map[string]string{} // label -> the app spelling that owns it
	var apps []string              // app labels in table order
	appRegions := map[string][]string{}
	seenID := map[string]string{} // "<id>.<region>" -> the backend ID that owns it
	warned := map[string]bool{}
	warn := func(msg string) {
		if !warned[msg] {
			warned[msg] = true
			p.warnings = append(p.warnings, msg)
		}
	}
	for _, b := range backends {
		if b.Deleted {
			continue
		}
		if !cleanRow(b) {
			p.clean = false
		}
		app, appOK := label(b.App)
		group = appGroup(app)
		switch {
		case !appOK:
			warn("app " + quote(b.App) + " is not a DNS label (1-63 letters, digits, '-' or '_'): no <app> names for it")
		case reserved[app]:
			warn("app " + quote(b.App) + " is a reserved name: no " + app + ".<zone> name for it, only its services names")
		case seenApp[app] != "" && seenApp[app] != b.App:
			warn("app " + quote(b.App) + " differs only in case from app " + quote(seenApp[app]) + ": not served under " + app + ".<zone>")
			appOK = false
		default:
			if seenApp[app] == "" {
				apps = append(apps, app)
			}
			seenApp[app] = b.App
			e := add(app, kindApp)
			e.backends = append(e.backends, b)
		}
		region, regionOK := label(b.Region)
		if !regionOK {
			warn("backend " + quote(b.ID) + ": region " + quote(b.Region) + " is not a DNS label: no <region> names and no SRV record for it")
			continue
		}
		if appOK && !reserved[app] {
			if appReserved[region] {
				warn("backend " + quote(b.ID) + ": region " + quote(b.Region) + " would shadow " + region + "." + app + ": no <region>.<app> name for it")
			} else {
				group = appRegionGroup(app, region)
				e := add(region+"."+app, kindAppRegion)
				if len(e.backends) == 0 {
					appRegions[app] = append(appRegions[app], region)
				}
				e.backends = append(e.backends, b)
			}
		}
		group = regionGroup(region)
		e := add(region+".backends", kindBackends)
		e.backends = append(e.backends, b)
		if appOK {
			add(region+".services", kindEmpty)
			group = appRegionGroup(app, region)
			e := add(app+"."+region+".services", kindService)
			e.backends = append(e.backends, b)
		}
		group = backendGroup(b.ID)
		id, idOK := label(b.ID)
		key := id + "." + region
		switch {
		case !idOK:
			warn("backend " + quote(b.ID) + ": ID is not a DNS label: no <id>.<region>.backends name and no SRV record for it")
		case seenID[key] != "" && seenID[key] != b.ID:
			warn("backend " + quote(b.ID) + " differs only in case from backend " + quote(seenID[key]) + " in region " + region + ": no name of its own and no SRV record")
		default:
			seenID[key] = b.ID
			rel := key + ".backends"
			e := add(rel, kindBackend)
			e.backends = append(e.backends, b)
			p.targets.of[b] = rel
		}
	}
	// Names users know from Fly.io's .internal: the nearest backends,
	// the app's regions and every app, as TXT.
	for _, app := range apps {
		// The nearest names hold no backends (see node.app), and of
		// and nearest.of no records: they change only with the app's
		// coming and going, which only a whole build follows, so they
		// are in no group a change builds again.
		group = ""
		add("of."+app, kindEmpty)
		add("nearest.of."+app, kindEmpty)
		for n := 1; n <= maxNearest; n++ {
			e := add("top"+strconv.Itoa(n)+".nearest.of."+app, kindNearest)
			e.app, e.top = app, n
		}
		group = appGroup(app)
		regions := append([]string(nil), appRegions[app]...)
		sort.Strings(regions)
		add("regions."+app, kindTXT).txt = []string{strings.Join(regions, ",")}
	}
	group = ""
	if only != nil {
		return p
	}
	if len(apps) > 0 {
		sorted := append([]string(nil), apps...)
		sort.Strings(sorted)
		add("_apps", kindTXT).txt = []string{strings.Join(sorted, ",")}
	}
	p.sixpn = sixpnAddrs(t.Pops())
	for _, pop := range t.Pops() {
		if a, ok := hostAddr(pop.Addr); ok {
			p.popAddrs = append(p.popAddrs, a)
		}
	}
	for _, pop := range t.Pops() {
		region, ok := label(pop.Region)
		if !ok {
			warn("pop " + quote(pop.Node) + ": region " + quote(pop.Region) + " is not a DNS label: not listed")
			continue
		}
		addr, ok := hostAddr(pop.Addr)
		if !ok {
			warn("pop " + quote(pop.Node) + ": addr " + quote(pop.Addr) + " has no IP address: not listed")
			continue
		}
		e := add(region+".pops", kindPops)
		e.addrs = append(e.addrs, addr)
	}
	return p
}

// label returns s as a DNS label in lower case, and whether it can be one.
// Letters, digits, '-' and '_' are accepted: anything else (a dot above all)
// would change the shape of the names built from it.
func label(s string) (string, bool) {
	if len(s) == 0 || len(s) > 63 {
		return "", false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return "", false
		}
	}
	return strings.ToLower(s), true
}

// quote keeps control characters and overlong values from the table out of
// the log.
func quote(s string) string {
	if len(s) > 80 {
		s = s[:80] + "..."
	}
	return strconv.Quote(s)
}

// hostAddr reads the IP address of a pops.addr value: "host:port" or a bare
// address.
func hostAddr(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	if a, err := netip.ParseAddr(strings.Trim(s, "[]")); err == nil && a.Zone() == "" {
		return a.Unmap(), true
	}
	return netip.Addr{}, false
}

// zoneBuilder writes a plan out under one origin.
type zoneBuilder struct {
	cfg     buildConfig
	z       *zone
	down    map[string]bool
	targets map[*routing.Backend]string // backend -> SRV target FQDN
	glue    map[*routing.Backend]dns.RR // backend -> address record of its target
	// orders holds one per list of backends of the plan, so the names
	// that list the same backends (a region of an app and its services
	// name) share their orders.
	orders map[listKey]*orders
	shared targetFunc // see sharedTarget
	plan   *plan
	// prev and fresh, when the build follows a change: the zone before
	// it, and the backends the change wrote (see unranked).
	prev  *zone
	fresh map[*routing.Backend]bool
}

func buildZone(cfg buildConfig, origin string, serial uint32, p *plan, down map[string]bool) *zone {
	z := &zone{origin: origin}
	var names []*node // of two nodes with one name, the later stays
	if origin != "." {
		z.dotted = "." + origin
	}
	zb := &zoneBuilder{cfg: cfg, z: z, down: down, targets: map[*routing.Backend]string{}, glue: map[*routing.Backend]dns.RR{}}
	nsName := zb.fqdn("ns.dns")
	z.soa = &dns.SOA{
		Hdr:     dns.RR_Header{Name: origin, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: cfg.ttl},
		Ns:      nsName,
		Mbox:    zb.fqdn("hostmaster.dns"),
		Serial:  serial,
		Refresh: soaRefresh,
		Retry:   soaRetry,
		Expire:  soaExpire,
		Minttl:  cfg.ttl,
	}
	z.ns = &dns.NS{Hdr: dns.RR_Header{Name: origin, Rrtype: dns.TypeNS, Class: dns.ClassINET, Ttl: cfg.ttl}, Ns: nsName}
	names = append(names, &node{name: origin, kind: kindApex, def: emptySet})

	zb.setup(p)
	groups := groupCollector{}
	for _, e := range p.entries {
		n := zb.node(e, p)
		if n == nil {
			continue
		}
		names = append(names, n)
		groups.add(e.group, n.name)
	}
	z.names, z.groups = newNameIndex(names), newGroupNames(groups)
	var axfr []*node
	for _, n := range names {
		if z.names.hasRecords(n) {
			axfr = append(axfr, n)
		}
	}
	sort.Slice(axfr, func(i, j int) bool { return axfr[i].name < axfr[j].name })
	z.axfr = &axfrList{nodes: axfr, done: true}
	return z
}

// setup gives the builder the plan whose backends' SRV targets it
// writes.
func (zb *zoneBuilder) setup(p *plan) { zb.plan = p }

// target returns the SRV target FQDN of b and the address record of that
// name, worked out at the first ask: a build following a change writes
// records for few backends.
func (zb *zoneBuilder) target(b *routing.Backend) (string, dns.RR, bool) {
	if name, ok := zb.targets[b]; ok {
		return name, zb.glue[b], true
	}
	rel, ok := zb.plan.targets.target(b)
	if !ok {
		return "", nil, false
	}
	name := zb.fqdn(rel)
	if _, ok := dns.IsDomainName(name); !ok || len(name) > 254 {
		return "", nil, false // too long under this origin: no target, no SRV
	}
	zb.targets[b] = name
	if b.Addr.IsValid() {
		zb.glue[b] = addrRR(name, b.Addr.Addr(), zb.cfg.ttl)
	}
	return name, zb.glue[b], true
}

// hasRecords reports whether a name of the index has records, for the
// transfer.
func (x nameIndex) hasRecords(n *node) bool {
	switch r := x.rankingOf(n); {
	case r != nil:
		return r.hasRecords()
	case n.list != nil:
		return n.list.hasRecords()
	}
	return len(n.def.a)+len(n.def.aaaa)+len(n.def.srv)+len(n.def.txt) > 0
}

// node builds the name of one entry, or nil when the name cannot exist
// under the zone's origin.
func (zb *zoneBuilder) node(e *entry, p *plan) *node {
	cfg, z := zb.cfg, zb.z
	name := zb.fqdn(e.rel)
	if _, ok := dns.IsDomainName(name); !ok || len(name) > 254 {
		return nil // longer than DNS allows under this origin: the name cannot exist
	}
	n := &node{name: name, kind: e.kind, def: emptySet}
	if e.rel == "ns.dns" {
		n.kind = kindNS
		n.def = zb.addrSet(name, nsAddresses(cfg, p))
		z.nsGlue = append(append(z.nsGlue, n.def.a...), n.def.aaaa...)
	}
	switch e.kind {
	case kindApp, kindService, kindAppRegion:
		zb.ranked(n, e.backends)
	case kindNearest:
		n.app, n.top = zb.fqdn(e.app), e.top
	case kindTXT:
		n.def = &rrset{txt: []dns.RR{&dns.TXT{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: cfg.ttl}, Txt: e.txt}}}
	case kindBackends:
		list := e.list
		if list.Len() == 0 {
			list = routing.RowsOf(e.backends)
		}
		zb.listed(n, list)
	case kindBackend:
		zb.unranked(n, e.backends)
	case kindPops:
		n.def = zb.addrSet(name, e.addrs)
	}
	return n
}

// fqdn writes a relative name under the origin.
func (zb *zoneBuilder) fqdn(rel string) string { return zb.z.fqdn(rel) }

func (z *zone) fqdn(rel string) string { return fqdnIn(z.origin, rel) }

// fqdnIn is the FQDN of rel, a name relative to origin.
func fqdnIn(origin, rel string) string {
	if origin == "." {
		return rel + "."
	}
	return rel + "." + origin
}

// serving filters the backends a name lists: routable (healthy, not
// deleted, valid address) and not reported down by every observer.
func (zb *zoneBuilder) serving(backends []*routing.Backend) []*routing.Backend {
	return serving(backends, zb.down)
}

func serving(backends []*routing.Backend, down map[string]bool) []*routing.Backend {
	out := make([]*routing.Backend, 0, len(backends))
	for _, b := range backends {
		if b.Routable() && !down[b.ID] {
			out = append(out, b)
		}
	}
	return out
}

// unranked writes a backend's own name, <id>.<region>.backends: its
// address record is also the glue of every SRV record naming it.
func (zb *zoneBuilder) unranked(n *node, backends []*routing.Backend) {
	list := zb.serving(backends)
	order := make([]routing.Ranked, len(list))
	addrs := make(map[*routing.Backend]dns.RR, len(list))
	for i, b := range list {
		order[i] = routing.Ranked{Backend: b}
		rr := addrRR(n.name, b.Addr.Addr(), zb.cfg.ttl)
		addrs[b] = rr
		if _, ok := zb.targets[b]; !ok {
			if rel, ok := zb.plan.targets.target(b); ok && zb.fqdn(rel) == n.name {
				zb.targets[b], zb.glue[b] = n.name, rr
			}
		}
	}
	n.def = zb.rrset(n.name, order, false, addrs, nil)
}

// backendRecs is what an unranked name holds for one backend.
type backendRecs struct {
	b         *routing.Backend
	addr      dns.RR
	srv, glue dns.RR // nil when the backend has no SRV target
}

// recsSet lays records out as the name's rrset, in the order given.
func recsSet(recs []backendRecs) *rrset {
	s := &rrset{}
	var v4, srv int
	for _, r := range recs {
		if _, ok := r.addr.(*dns.A); ok {
			v4++
		}
		if r.srv != nil {
			srv++
		}
	}
	if v4 > 0 {
		s.a = make([]dns.RR, 0, v4)
	}
	if v4 < len(recs) {
		s.aaaa = make([]dns.RR, 0, len(recs)-v4)
	}
	if srv > 0 {
		s.srv, s.glue = make([]dns.RR, 0, srv), make([]dns.RR, 0, srv)
	}
	for _, r := range recs {
		if _, v4 := r.addr.(*dns.A); v4 {
			s.a = append(s.a, r.addr)
		} else {
			s.aaaa = append(s.aaaa, r.addr)
		}
		if r.srv != nil {
			s.srv = append(s.srv, r.srv)
			s.glue = append(s.glue, r.glue)
		}
	}
	return s
}

// addrSet is A and AAAA records of owner for the addresses.
func (zb *zoneBuilder) addrSet(owner string, addrs []netip.Addr) *rrset {
	s := &rrset{}
	for _, a := range addrs {
		if a.Is4() {
			s.a = append(s.a, addrRR(owner, a, zb.cfg.ttl))
		} else {
			s.aaaa = append(s.aaaa, addrRR(owner, a, zb.cfg.ttl))
		}
	}
	return s
}

type srvKey struct {
	b    *routing.Backend
	tier routing.Tier
}

// rrset writes the records of owner for backends in the given order.
func (zb *zoneBuilder) rrset(owner string, order []routing.Ranked, tiered bool, addrs map[*routing.Backend]dns.RR, srvs map[srvKey]dns.RR) *rrset {
	return writeSet(owner, zb.cfg.ttl, order, tiered, addrs, srvs, zb.target)
}

// writeSet writes the records of owner for backends in the given order.
// SRV records of ranked names carry the client's geo tier as their
// priority (0 same country ... 3 elsewhere), so SRV clients that follow
// priorities make the proxy's choice; their weight is the backend's
// weight.
func writeSet(owner string, ttl uint32, order []routing.Ranked, tiered bool, addrs map[*routing.Backend]dns.RR, srvs map[srvKey]dns.RR, target targetFunc) *rrset {
	s := &rrset{}
	for _, r := range order {
		b := r.Backend
		rr := addrs[b]
		if rr == nil {
			rr = addrRR(owner, b.Addr.Addr(), ttl)
			addrs[b] = rr
		}
		if b.Addr.Addr().Is4() {
			s.a = append(s.a, rr)
		} else {
			s.aaaa = append(s.aaaa, rr)
		}
		target, glue, ok := target(b)
		if !ok {
			continue
		}
		var prio uint16
		if tiered {
			prio = uint16(r.Tier)
		}
		key := srvKey{b, routing.Tier(prio)}
		srv := srvs[key]
		if srv == nil {
			srv = &dns.SRV{
				Hdr:      dns.RR_Header{Name: owner, Rrtype: dns.TypeSRV, Class: dns.ClassINET, Ttl: ttl},
				Priority: prio,
				Weight:   weight(b),
				Port:     b.Addr.Port(),
				Target:   target,
			}
			if srvs != nil {
				srvs[key] = srv
			}
		}
		s.srv = append(s.srv, srv)
		s.glue = append(s.glue, glue)
	}
	return s
}

func weight(b *routing.Backend) uint16 {
	return uint16(min(b.EffectiveWeight(), 65535))
}

func addrRR(owner string, a netip.Addr, ttl uint32) dns.RR {
	if a.Is4() {
		return &dns.A{Hdr: dns.RR_Header{Name: owner, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: ttl}, A: net.IP(a.AsSlice())}
	}
	return &dns.AAAA{Hdr: dns.RR_Header{Name: owner, Rrtype: dns.TypeAAAA, Class: dns.ClassINET, Ttl: ttl}, AAAA: net.IP(a.AsSlice())}
}
