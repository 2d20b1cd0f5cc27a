package cluster

import (
	"context"
	"sort"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/edgeproxy/edgeproxy/store"
)

// Stats are cumulative counters.
type Stats struct {
	ChangesSent     atomic.Uint64
	ChangesApplied  atomic.Uint64 // changes that won the merge
	ChangesStale    atomic.Uint64 // changes already known or superseded
	ChangesRefused  atomic.Uint64
	MessagesSent    atomic.Uint64
	MessagesRecv    atomic.Uint64
	MessagesRefused atomic.Uint64 // undecodable, oversized, or dropped for a full inbox
	BytesSent       atomic.Uint64
	BytesRecv       atomic.Uint64
	BytesPushed     atomic.Uint64 // of BytesSent: the pushes of local commits
	Pushes          atomic.Uint64 // local commits pushed (one per check that found changes)
	TombstonesGC    atomic.Uint64
	// StreamsSkipped: large messages dropped because the member's
	// stream queue was full (anti-entropy sends again later).
	StreamsSkipped atomic.Uint64
	// ChangesRelayed: changes the bridge's other node merged and this
	// one relayed to its members (Bridge).
	ChangesRelayed atomic.Uint64
	// ChangesForwarded: changes learnt by repair and passed on to a few
	// members that may lack them, each counted once.
	ChangesForwarded atomic.Uint64
	// VectorReads: reads of the file for the local vector, of its own
	// version or of every site's. A merge of this node's, or a local
	// commit the push loop has looked at, needs none.
	VectorReads atomic.Uint64
}

// MemberStatus is one member as this node sees it.
type MemberStatus struct {
	Name  string    `json:"name"`
	Addr  string    `json:"addr"`
	Site  string    `json:"site,omitempty"`
	State string    `json:"state"`
	Since time.Time `json:"since"`
	// Bridge: the member is a bridge of this node's region.
	Bridge bool `json:"bridge,omitempty"`
	// Behind is how many of this node's versions the member has not
	// confirmed yet (from its last anti-entropy vector); -1 if unknown.
	Behind int64 `json:"versions_behind"`
	// LagMS is the commit-to-merge delay of the newest change from that
	// member merged here, in milliseconds; -1 if none yet.
	LagMS    float64      `json:"lag_ms"`
	LagAt    time.Time    `json:"lag_at,omitzero"`
	Vector   store.Vector `json:"vector,omitempty"`
	VectorAt time.Time    `json:"vector_at,omitzero"`
}

// Status is this node's view of the cluster.
type Status struct {
	Node      string         `json:"node"`
	Addr      string         `json:"addr"`
	Cluster   string         `json:"cluster,omitempty"`
	Encrypted bool           `json:"encrypted"`
	Site      string         `json:"site"`
	DBVersion uint64         `json:"db_version"`
	Vector    store.Vector   `json:"vector"`
	Members   []MemberStatus `json:"members"`
	Counts    map[string]int `json:"members_by_state"`
	Health    int            `json:"health_score"`
	// Bridge names the other cluster this node relays to, on a bridge.
	Bridge string `json:"bridge,omitempty"`
	// TombstonesKept says why the last collection round that found
	// tombstones older than TombstoneAge could collect none.
	TombstonesKept string `json:"tombstones_kept,omitempty"`
}

func stateName(s memberlist.NodeStateType) string {
	switch s {
	case memberlist.StateAlive:
		return "alive"
	case memberlist.StateSuspect:
		return "suspect"
	case memberlist.StateDead:
		return "dead"
	case memberlist.StateLeft:
		return "left"
	}
	return "unknown"
}

// Status reports members, versions and lag, with each member's last
// known vector.
func (n *Node) Status(ctx context.Context) Status { return n.status(ctx, true) }

// Brief is Status without the members' vectors, for what polls it
// (metrics, the status page): each vector has an entry per POP, and
// building a thousand of them would cost more than the rest.
func (n *Node) Brief(ctx context.Context) Status { return n.status(ctx, false) }

func (n *Node) status(ctx context.Context, vectors bool) Status {
	st := Status{Node: n.cfg.Name, Addr: n.self, Cluster: n.cfg.Cluster,
		Encrypted: len(n.cfg.Keys) > 0, Site: n.st.SiteID(), Counts: map[string]int{"alive": 1, "dead": 0, "left": 0},
		Health: n.ml.GetHealthScore()}
	if b := n.sibling.Load(); b != nil {
		st.Bridge = b.cfg.Cluster
	}
	st.Vector, _ = n.st.Vector(ctx)
	st.DBVersion = st.Vector[st.Site]
	live := map[string]memberlist.NodeStateType{}
	for _, m := range n.ml.Members() {
		live[m.Name] = m.State
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	st.TombstonesKept = n.tombstonesKept
	for _, p := range n.known {
		state := p.state
		if s, ok := live[p.name]; ok {
			state = s
		}
		ms := MemberStatus{Name: p.name, Addr: p.addr, Site: p.site, State: stateName(state), Since: p.since, Bridge: p.bridge,
			Behind: -1, LagMS: -1, VectorAt: p.vectorAt, LagAt: p.lagAt}
		if vectors {
			ms.Vector = n.sites.vector(p.vector)
		}
		if p.vector != nil {
			ms.Behind = int64(st.DBVersion) - int64(p.vector.at(n.ownSite))
		}
		if !p.lagAt.IsZero() {
			ms.LagMS = float64(p.lag.Microseconds()) / 1000
		}
		st.Members = append(st.Members, ms)
		st.Counts[ms.State]++
	}
	sort.Slice(st.Members, func(i, j int) bool { return st.Members[i].Name < st.Members[j].Name })
	return st
}
