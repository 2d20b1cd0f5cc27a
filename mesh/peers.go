package mesh

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sort"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/edgeproxy/edgeproxy/routing"
	"github.com/edgeproxy/edgeproxy/sixpn"
)

// Peer is another POP as the device should know it.
type Peer struct {
	Node       string
	PublicKey  wgtypes.Key
	Endpoint   string         // host:port other POPs dial; empty: wait to be dialled
	AllowedIPs []netip.Prefix // the POP's /64 and routes
}

func (p Peer) same(q Peer) bool {
	return p.Node == q.Node && p.PublicKey == q.PublicKey && p.Endpoint == q.Endpoint && slices.Equal(p.AllowedIPs, q.AllowedIPs)
}

// PeersFromPops turns the pops table into peers: every POP but self that
// has published a public key and a prefix. Rows that cannot be installed
// (a bad key, a foreign or overlapping prefix, a key two POPs share) are
// left out and each is reported, naming the POPs involved; of two rows
// that overlap, the one installed (installed reports it; nil for none)
// keeps its place. It is pure and sorted by node.
func PeersFromPops(plan sixpn.Plan, self string, selfKey wgtypes.Key, pops []routing.Pop, installed func(node string) bool) (peers []Peer, problems []error) {
	keys := make(map[string]wgtypes.Key)
	byKey := make(map[wgtypes.Key][]string)
	var claims []sixpn.Claim
	for _, p := range pops {
		if p.Node != self && (p.PublicKey == "" || p.Prefix6 == "") {
			continue // not published yet
		}
		c, err := sixpn.ParseColumn(p.Node, p.Prefix6)
		if err != nil {
			problems = append(problems, err)
			continue
		}
		claims = append(claims, c)
		if p.Node == self {
			continue
		}
		k, err := wgtypes.ParseKey(p.PublicKey)
		if err != nil {
			problems = append(problems, fmt.Errorf("POP %q: public key is not a WireGuard key", p.Node))
			continue
		}
		keys[p.Node] = k
		byKey[k] = append(byKey[k], p.Node)
	}
	ok, refused := plan.Validate(self, claims, installed)
	for _, r := range refused {
		problems = append(problems, r)
	}
	endpoints := make(map[string]string, len(pops))
	for _, p := range pops {
		endpoints[p.Node] = p.Endpoint
	}
	for _, c := range ok {
		if c.Node == self {
			continue
		}
		k, has := keys[c.Node]
		if !has {
			continue
		}
		if k == selfKey {
			problems = append(problems, fmt.Errorf("POP %q: publishes this POP's own public key", c.Node))
			continue
		}
		if nodes := byKey[k]; len(nodes) > 1 {
			problems = append(problems, fmt.Errorf("POP %q: public key shared with POP %q", c.Node, other(nodes, c.Node)))
			continue
		}
		peers = append(peers, Peer{Node: c.Node, PublicKey: k, Endpoint: endpoints[c.Node], AllowedIPs: c.Prefixes()})
	}
	sort.Slice(peers, func(i, j int) bool { return peers[i].Node < peers[j].Node })
	return peers, problems
}

func other(nodes []string, node string) string {
	for _, n := range nodes {
		if n != node {
			return n
		}
	}
	return ""
}

// Peers are the peers as last applied by SetPeers, sorted by node.
func (d *Device) Peers() []Peer {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]Peer, 0, len(d.peers))
	for _, p := range d.peers {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return out
}

// Change says what SetPeers did.
type Change struct {
	Added, Removed, Updated []string // node names
}

// Empty reports whether nothing changed.
func (c Change) Empty() bool { return len(c.Added)+len(c.Removed)+len(c.Updated) == 0 }

// SetPeers makes the device's peers those given, by difference: a new peer
// is added, a peer no longer listed is removed, a peer whose allowed IPs
// changed is updated in place, and a peer whose endpoint changed is put
// again so it handshakes at once with the new address. Peers that did not
// change are not touched and keep their sessions. Routes to every allowed
// prefix go into the link.
func (d *Device) SetPeers(peers []Peer) (Change, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var ch Change
	if d.closed {
		return ch, fmt.Errorf("mesh: device closed")
	}
	want := make(map[wgtypes.Key]Peer, len(peers))
	for _, p := range peers {
		want[p.PublicKey] = p
	}
	cur, err := d.wg.state()
	if err != nil {
		return ch, fmt.Errorf("mesh: reading %s: %w", d.name, err)
	}
	// Removals first, so a prefix that moved to another peer is free.
	var removals, puts []wgtypes.PeerConfig
	var errs []error // endpoints that do not resolve: the peer goes in without one
	have := make(map[wgtypes.Key]bool, len(cur.Peers))
	for _, p := range cur.Peers {
		have[p.PublicKey] = true
		w, keep := want[p.PublicKey]
		old, known := d.peers[p.PublicKey]
		if !keep {
			removals = append(removals, wgtypes.PeerConfig{PublicKey: p.PublicKey, Remove: true})
			ch.Removed = append(ch.Removed, nameOf(old, known, p.PublicKey))
			delete(d.peers, p.PublicKey)
			continue
		}
		if known && old.Endpoint != w.Endpoint {
			// A new address: start over, so the handshake is immediate
			// instead of waiting for the old session to expire.
			removals = append(removals, wgtypes.PeerConfig{PublicKey: p.PublicKey, Remove: true})
			pc, err := d.peerConfig(w, false)
			errs = append(errs, err)
			puts = append(puts, pc)
			ch.Updated = append(ch.Updated, w.Node)
			continue
		}
		if !known || !slices.Equal(old.AllowedIPs, w.AllowedIPs) || !sameIPs(p.AllowedIPs, w.AllowedIPs) {
			pc, err := d.peerConfig(w, true)
			errs = append(errs, err)
			puts = append(puts, pc)
			ch.Updated = append(ch.Updated, w.Node)
		}
	}
	known := make(map[string]bool, len(d.peers))
	for _, p := range d.peers {
		known[p.Node] = true
	}
	selfKey := cur.PublicKey
	var passive []wgtypes.Key
	for _, p := range peers {
		if have[p.PublicKey] {
			continue
		}
		pc, err := d.peerConfig(p, false)
		errs = append(errs, err)
		// Two POPs that add each other at the same moment would both
		// initiate, each discard the other's response, and wait five
		// seconds for WireGuard's retry. So of a new pair only the lower
		// key initiates at once; the other turns its keepalive on a moment
		// later (see settle), when the handshake is normally done. A POP
		// we knew under another key or address initiates at once: it is
		// not adding us at the same time.
		if !known[p.Node] && bytes.Compare(selfKey[:], p.PublicKey[:]) > 0 && d.keepalive > 0 {
			off := time.Duration(0)
			pc.PersistentKeepaliveInterval = &off
			passive = append(passive, p.PublicKey)
		}
		puts = append(puts, pc)
		ch.Added = append(ch.Added, p.Node)
	}
	if len(removals) > 0 {
		if err := d.wg.configure(wgtypes.Config{Peers: removals}); err != nil {
			return ch, fmt.Errorf("mesh: removing peers of %s: %w", d.name, err)
		}
	}
	if len(puts) > 0 {
		if err := d.wg.configure(wgtypes.Config{Peers: puts}); err != nil {
			return ch, fmt.Errorf("mesh: setting peers of %s: %w", d.name, err)
		}
	}
	for _, p := range peers {
		d.peers[p.PublicKey] = p
	}
	if len(passive) > 0 {
		keys := passive
		time.AfterFunc(settleDelay, func() { d.settle(keys) })
	}
	errs = append(errs, d.syncRoutes(peers))
	return ch, errors.Join(errs...)
}

// settleDelay is how long the higher key of a new pair waits for the
// lower key's handshake before it turns its keepalive on (and so
// initiates itself when no session came, as when the other POP does not
// know this one yet). It is longer than a handshake takes on any path
// between POPs, so the two initiations do not cross.
const settleDelay = 500 * time.Millisecond

// settle turns the configured keepalive on for peers added without it.
func (d *Device) settle(keys []wgtypes.Key) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed || d.keepalive == 0 {
		return
	}
	var pc []wgtypes.PeerConfig
	for _, k := range keys {
		if _, ok := d.peers[k]; ok {
			ka := d.keepalive
			pc = append(pc, wgtypes.PeerConfig{PublicKey: k, UpdateOnly: true, PersistentKeepaliveInterval: &ka})
		}
	}
	if len(pc) > 0 {
		if err := d.wg.configure(wgtypes.Config{Peers: pc}); err != nil {
			d.log.Warn("turning keepalive on", "interface", d.name, "error", err.Error())
		}
	}
}

func nameOf(p Peer, known bool, k wgtypes.Key) string {
	if known {
		return p.Node
	}
	return k.String()
}

func sameIPs(a []net.IPNet, b []netip.Prefix) bool {
	if len(a) != len(b) {
		return false
	}
	set := make(map[netip.Prefix]bool, len(a))
	for _, n := range a {
		set[toPrefix(n)] = true
	}
	for _, p := range b {
		if !set[p] {
			return false
		}
	}
	return true
}

func toPrefix(n net.IPNet) netip.Prefix {
	a, _ := netip.AddrFromSlice(n.IP)
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones)
}

func toIPNet(p netip.Prefix) net.IPNet {
	return net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func (d *Device) peerConfig(p Peer, update bool) (wgtypes.PeerConfig, error) {
	pc := wgtypes.PeerConfig{PublicKey: p.PublicKey, UpdateOnly: update, ReplaceAllowedIPs: true}
	for _, a := range p.AllowedIPs {
		pc.AllowedIPs = append(pc.AllowedIPs, toIPNet(a))
	}
	if !update {
		ka := d.keepalive
		pc.PersistentKeepaliveInterval = &ka
		if p.Endpoint != "" {
			ua, err := net.ResolveUDPAddr("udp", p.Endpoint)
			if err != nil {
				// Still a peer: it can dial this POP, and the next change
				// of its row resolves again.
				return pc, fmt.Errorf("mesh: POP %q: endpoint %q: %w", p.Node, p.Endpoint, err)
			}
			pc.Endpoint = ua
		}
	}
	return pc, nil
}

// syncRoutes routes every peer's prefixes into the link and removes routes
// no peer holds any more.
func (d *Device) syncRoutes(peers []Peer) error {
	want := make(map[netip.Prefix]bool)
	for _, p := range peers {
		for _, a := range p.AllowedIPs {
			want[a] = true
		}
	}
	var firstErr error
	for p := range want {
		if d.routes[p] {
			continue
		}
		if err := d.link.addRoute(p, d.srcFor(p)); err != nil && firstErr == nil {
			firstErr = fmt.Errorf("mesh: route %s into %s: %w", p, d.name, err)
			continue
		}
		d.routes[p] = true
	}
	for p := range d.routes {
		if !want[p] {
			d.link.delRoute(p)
			delete(d.routes, p)
		}
	}
	return firstErr
}
