package edgeroute

import (
	"context"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/edgeproxy/edgeproxy/cluster"
	"github.com/edgeproxy/edgeproxy/pop"
	"github.com/edgeproxy/edgeproxy/routing"
	"github.com/edgeproxy/edgeproxy/sixpn"
)

// StatusView is the whole edge as this POP sees it: the status page and
// its JSON.
type StatusView struct {
	Generated time.Time `json:"generated"`
	// Self is this POP's node name; its own row in Pops has Self set.
	Self   string      `json:"self"`
	Signal pop.Signal  `json:"signal"`
	Pops   []PopStatus `json:"pops"`
	// Replication is this POP's view of the cluster; nil when the POP runs
	// alone.
	Replication *ReplicationStatus `json:"replication,omitempty"`
	Apps        []AppStatus        `json:"apps"`
	// Reports are what other apps (bgp, wg6pn) registered with the POP.
	Reports []pop.Report `json:"reports"`
	// Errors are parts of the view that could not be read.
	Errors []string `json:"errors,omitempty"`
}

// PopStatus is one POP as this POP sees it.
type PopStatus struct {
	Node     string `json:"node"`
	Region   string `json:"region"`
	Country  string `json:"country"`
	Addr     string `json:"addr,omitempty"`
	Endpoint string `json:"endpoint,omitempty"`
	Prefix6  string `json:"prefix6,omitempty"`
	// PublicKey is the start of the POP's WireGuard key.
	PublicKey string `json:"public_key,omitempty"`
	Self      bool   `json:"self"`
	// State is the POP's health: this POP's own signal (serving, draining,
	// stopping); for another POP, what reaches this one of it: its
	// membership when it is not alive (suspect, dead, left), else the
	// signal it publishes in its replicated row, else what its anycast
	// column says (drains, has withdrawn everything).
	State string `json:"state"`
	// Published is the signal the POP wrote into its row.
	Published string `json:"published_state,omitempty"`
	// Member is the POP's cluster membership as seen from here.
	Member string `json:"member,omitempty"`
	// LagMS is the commit-to-merge delay of its newest change merged here;
	// Behind how many of this POP's versions it has not confirmed.
	LagMS  float64 `json:"lag_ms"`
	Behind int64   `json:"versions_behind"`
	// Anycast is every prefix the POP announces, with its phase
	// (announced, draining, withdrawn), from its replicated row.
	Anycast []PrefixPhase `json:"anycast"`
	// Backends counts the backends whose address lies in the POP's 6PN
	// prefix or routes.
	Backends int `json:"backends"`
}

// PrefixPhase is one anycast prefix of a POP.
type PrefixPhase struct {
	Prefix string `json:"prefix"`
	Phase  string `json:"phase"`
}

// ReplicationStatus is the cluster as this POP sees it.
type ReplicationStatus struct {
	Members   int            `json:"members"`
	ByState   map[string]int `json:"members_by_state"`
	Encrypted bool           `json:"encrypted"`
	Health    int            `json:"health_score"`
	DBVersion uint64         `json:"db_version"`
}

// AppStatus is one app and the backends the page lists of it.
type AppStatus struct {
	Name string `json:"name"`
	// Count is the app's backends (not deleted); Routable, those this
	// POP may route to now.
	Count    int `json:"count"`
	Routable int `json:"routable"`
	// Backends are the ones listed: all, or as many as the handler's
	// backends_per_app, those not routable from here first, then those
	// with connections from here. Unlisted counts the rest.
	Backends []BackendStatus `json:"backends"`
	Unlisted int             `json:"unlisted"`
}

// BackendStatus is one backend: its row, this POP's view of it and every
// observing POP's health row.
type BackendStatus struct {
	ID       string `json:"id"`
	Region   string `json:"region"`
	Country  string `json:"country"`
	Addr     string `json:"addr"`
	Healthy  bool   `json:"healthy"` // the row's healthy column
	Routable bool   `json:"routable"`
	// Active connections this POP holds to it; Total ever.
	Active int64  `json:"active"`
	Total  uint64 `json:"total"`
	// Behind is the POP whose 6PN prefix (or route) holds its address.
	Behind    string           `json:"behind,omitempty"`
	Observers []ObserverStatus `json:"observers"`
}

// ObserverStatus is one POP's health row of a backend.
type ObserverStatus struct {
	Observer  string    `json:"observer"`
	Healthy   bool      `json:"healthy"`
	RTTMs     float64   `json:"rtt_ms"`
	CheckedAt time.Time `json:"checked_at"`
}

// statusView gathers the view, listing at most perApp backends of each app
// (all where perApp < 0). It reads the table snapshot, the signal, the
// cluster status and the health rows of the listed backends; it runs per
// page request, never per connection.
func (a *App) statusView(ctx context.Context, perApp int) StatusView {
	sig := a.rt.Signal()
	tbl := a.rt.Table()
	v := StatusView{Generated: time.Now().UTC(), Self: a.rt.Identity().Node, Signal: sig,
		Pops: []PopStatus{}, Apps: []AppStatus{}, Reports: a.rt.Reports()}

	members := map[string]cluster.MemberStatus{}
	if n := a.rt.Cluster(); n != nil {
		st := n.Brief(ctx)
		total := 0
		for _, n := range st.Counts {
			total += n
		}
		v.Replication = &ReplicationStatus{Members: total, ByState: st.Counts, Encrypted: st.Encrypted,
			Health: st.Health, DBVersion: st.DBVersion}
		for _, m := range st.Members {
			members[m.Name] = m
		}
	}

	var claims []sixpn.Claim
	for _, p := range tbl.Pops() {
		ps := PopStatus{Node: p.Node, Region: p.Region, Country: p.Country, Addr: p.Addr, Endpoint: p.Endpoint,
			Prefix6: p.Prefix6, PublicKey: shortKey(p.PublicKey), Self: p.Node == v.Self, Anycast: parseAnycast(p.Anycast),
			Published: p.State, LagMS: -1, Behind: -1}
		if m, ok := members[p.Node]; ok {
			ps.Member, ps.LagMS, ps.Behind = m.State, m.LagMS, m.Behind
		}
		ps.State = popState(ps, sig, v.Replication != nil)
		if c, err := sixpn.ParseColumn(p.Node, p.Prefix6); err == nil {
			claims = append(claims, c)
		}
		v.Pops = append(v.Pops, ps)
	}
	if !hasSelf(v.Pops) && v.Self != "" {
		// A POP that has not written its row yet still shows itself.
		id := a.rt.Identity()
		v.Pops = append(v.Pops, PopStatus{Node: id.Node, Region: id.Region, Country: id.Country, Self: true,
			State: string(sig.State), LagMS: -1, Behind: -1, Anycast: []PrefixPhase{}})
	}

	behind := map[string]int{}
	var ids []string
	for _, name := range tbl.Apps() {
		as := AppStatus{Name: name, Backends: []BackendStatus{}}
		// The listed backends, by listKind, each kind in table order and
		// never more than the page lists.
		var byKind [3][]*routing.Backend
		for _, b := range tbl.App(name) {
			if b.Deleted {
				continue
			}
			as.Count++
			if b.Routable() {
				as.Routable++
			}
			if owner, ok := sixpn.Owner(claims, b.Addr.Addr()); ok {
				behind[owner]++
			}
			if k := listKind(b); perApp < 0 || len(byKind[k]) < perApp {
				byKind[k] = append(byKind[k], b)
			}
		}
		list := slices.Concat(byKind[:]...)
		if perApp >= 0 && len(list) > perApp {
			list = list[:perApp]
		}
		for _, b := range list {
			bs := BackendStatus{ID: b.ID, Region: b.Region, Country: b.Country, Addr: b.Addr.String(), Healthy: b.Healthy,
				Routable: b.Routable(), Observers: []ObserverStatus{}}
			if b.Load != nil {
				bs.Active, bs.Total = b.Load.Active(), b.Load.Total()
			}
			bs.Behind, _ = sixpn.Owner(claims, b.Addr.Addr())
			as.Backends = append(as.Backends, bs)
			ids = append(ids, b.ID)
		}
		as.Unlisted = as.Count - len(as.Backends)
		v.Apps = append(v.Apps, as)
	}
	if ids == nil {
		ids = []string{} // no backend listed: no health row to read
	}
	if rows, err := a.rt.Store().HealthObservations(ctx, ids); err != nil {
		v.Errors = append(v.Errors, "health rows: "+err.Error())
	} else {
		obs := map[string][]ObserverStatus{}
		for _, o := range rows {
			obs[o.BackendID] = append(obs[o.BackendID], ObserverStatus{Observer: o.Observer, Healthy: o.Healthy,
				RTTMs: float64(o.RTT.Microseconds()) / 1000, CheckedAt: o.CheckedAt.UTC()})
		}
		for i := range v.Apps {
			for j := range v.Apps[i].Backends {
				if o := obs[v.Apps[i].Backends[j].ID]; o != nil {
					v.Apps[i].Backends[j].Observers = o
				}
			}
		}
	}
	for i := range v.Pops {
		v.Pops[i].Backends = behind[v.Pops[i].Node]
	}
	return v
}

// listKind orders the backends the page lists: 0 not routable from here
// (what an operator opens the page for), 1 with connections from here, 2
// the rest.
func listKind(b *routing.Backend) int {
	switch {
	case !b.Routable():
		return 0
	case b.Load != nil && b.Load.Active() > 0:
		return 1
	default:
		return 2
	}
}

// popState names a POP's health for the page. This POP knows its own
// signal. Of another POP it knows its membership, the signal it publishes
// in its row, and its replicated anycast phases: a POP that drains its
// announcements is draining, one that has withdrawn all of them is
// withdrawn.
func popState(p PopStatus, sig pop.Signal, clustered bool) string {
	if p.Self {
		if sig.Stale {
			return string(sig.State) + " (stale table)"
		}
		return string(sig.State)
	}
	if clustered && p.Member != "" && p.Member != "alive" {
		return p.Member
	}
	if p.Published != "" && (!clustered || p.Member == "alive") {
		return strings.ReplaceAll(p.Published, ",stale", " (stale table)")
	}
	draining, withdrawn := false, len(p.Anycast) > 0
	for _, a := range p.Anycast {
		draining = draining || a.Phase == "draining"
		withdrawn = withdrawn && a.Phase == "withdrawn"
	}
	switch {
	case draining:
		return "draining"
	case withdrawn:
		return "withdrawn"
	case !clustered:
		return "unknown"
	case p.Member == "":
		return "not a member"
	}
	return "alive"
}

func hasSelf(pops []PopStatus) bool {
	for _, p := range pops {
		if p.Self {
			return true
		}
	}
	return false
}

// parseAnycast reads a pops row's anycast column ("prefix=phase,...").
func parseAnycast(col string) []PrefixPhase {
	out := []PrefixPhase{}
	for _, part := range strings.Split(col, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		if p, err := netip.ParsePrefix(k); err == nil {
			out = append(out, PrefixPhase{Prefix: p.String(), Phase: v})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Prefix < out[j].Prefix })
	return out
}

func shortKey(k string) string {
	if len(k) > 10 {
		return k[:10] + "…"
	}
	return k
}
