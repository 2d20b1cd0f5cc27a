package anycast

import (
	"net/netip"
	"strings"
	"time"
)

// Status is the speaker as an operator sees it (GET /bgp/).
type Status struct {
	Running  bool     `json:"running"`
	ASN      uint32   `json:"asn,omitempty"`
	RouterID string   `json:"router_id,omitempty"`
	Listen   string   `json:"listen"`
	POP      PopState `json:"pop"`
	// Anycast is what this POP writes to the anycast column of its pops
	// row (see PopText).
	Anycast  string         `json:"anycast"`
	Peers    []PeerStatus   `json:"peers"`
	Prefixes []PrefixStatus `json:"prefixes"`
	// Announcements and Withdrawals count changes this process made to
	// the RIB (each goes to every established peer as one update).
	Announcements uint64 `json:"announcements"`
	Withdrawals   uint64 `json:"withdrawals"`
	// Reloads counts configs applied; Unchanged those that changed nothing.
	Reloads   uint64 `json:"reloads"`
	Unchanged uint64 `json:"unchanged_reloads"`
}

// PopState is the part of the POP signal the speaker follows.
type PopState struct {
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
	Stale  bool   `json:"stale"`
	Seq    uint64 `json:"seq"`
}

// PeerStatus is one BGP neighbour.
type PeerStatus struct {
	Address  string `json:"address"`
	RemoteAS uint32 `json:"remote_as"`
	RouterID string `json:"router_id,omitempty"`
	// State is the BGP FSM state: idle, connect, active, opensent,
	// openconfirm or established.
	State string `json:"state"`
	// Up is when the session was established (zero unless it is).
	Up   time.Time `json:"up,omitzero"`
	Down time.Time `json:"down,omitzero"`
	// Uptime is seconds since Up.
	Uptime         float64 `json:"uptime_seconds"`
	NegotiatedHold uint64  `json:"negotiated_hold_seconds,omitempty"`
	// Advertised and Received count prefixes; Installed counts the
	// received ones in the POP's table, which rejects every route a peer
	// sends, so it stays 0.
	Advertised      uint64 `json:"prefixes_sent"`
	Received        uint64 `json:"prefixes_received"`
	Installed       uint64 `json:"prefixes_installed"`
	UpdatesSent     uint64 `json:"updates_sent"`
	UpdatesReceived uint64 `json:"updates_received"`
	WithdrawalsSent uint64 `json:"withdrawals_sent"`
	LastError       string `json:"last_error,omitempty"`
}

// PrefixStatus is one anycast prefix.
type PrefixStatus struct {
	PrefixState
	// Address is the address as written, the one assign puts on Interface.
	Address          string   `json:"address"`
	Interface        string   `json:"interface,omitempty"`
	When             string   `json:"when,omitempty"`
	Min              int      `json:"min,omitempty"`
	NextHop          string   `json:"next_hop"`
	MED              *uint32  `json:"med,omitempty"`
	Communities      []string `json:"communities,omitempty"`
	LargeCommunities []string `json:"large_communities,omitempty"`
	Prepend          int      `json:"prepend,omitempty"`
	// SinceSeconds is how long the prefix has been in its state.
	SinceSeconds float64 `json:"since_seconds"`
}

// PopText is the anycast column of the POP's pops row: every prefix and
// its state, comma-separated and sorted, e.g.
// "192.0.2.1/32=announced,2001:db8:100::1/128=withdrawn". States are
// announced, draining (announced with GRACEFUL_SHUTDOWN, about to be
// withdrawn) and withdrawn; an empty text means the POP announces nothing.
func PopText(states []PrefixState) string {
	var b strings.Builder
	for i, s := range states {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(s.Prefix.String())
		b.WriteByte('=')
		b.WriteString(string(s.Phase))
	}
	return b.String()
}

// ParsePopText reads a pops row's anycast column back.
func ParsePopText(s string) map[netip.Prefix]Phase {
	out := map[netip.Prefix]Phase{}
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		if p, err := netip.ParsePrefix(k); err == nil {
			out[p] = Phase(v)
		}
	}
	return out
}
