package cluster

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/edgeproxy/edgeproxy/store"
)

// Node is this POP's membership in the cluster and its replicator.
type Node struct {
	cfg     Config
	st      *store.Store
	log     *slog.Logger
	ml      *memberlist.Memberlist
	keyring *memberlist.Keyring
	self    string // the address other nodes reach this one at
	inbox   chan []byte
	Stats   Stats

	// fileGen moves whenever the file may have changed (a change report,
	// a local commit pushed, a merge): anti-entropy rereads the local
	// vector only then.
	fileGen atomic.Uint64
	// The local vector last read (localVector).
	vecMu sync.Mutex
	held  localVec
	// mergeMu is held while the node merges (merge) and while the push
	// loop reads the file after a report.
	mergeMu sync.Mutex
	// sites numbers the sites of every vector this node holds (vclock);
	// ownSite is this node's own.
	sites   siteTable
	ownSite int
	// syncWake wakes anti-entropy from its rest: something changed that
	// may leave a member lacking what another has.
	syncWake chan struct{}

	mu       sync.Mutex
	known    map[string]*peer // by node name, including dead and left ones
	inflight map[string]bool  // a join in progress ("join")
	// streams: members a stream is being sent to, with the large messages
	// waiting for it.
	streams map[string][]queued
	// seedJoined holds the addresses (seeds and failed members) a
	// rejoin has reached: a seed among them is not joined again.
	seedJoined map[string]bool
	// recent holds this node's own vectors lately announced, by digest,
	// oldest first in recentOrder: members send differences from them.
	recent      map[uint64]vclock
	recentOrder []uint64

	// sibling is the bridge's node in its other cluster (Bridge), or nil.
	sibling atomic.Pointer[Node]
	// secondary: the second node of a bridge, whose sibling collects the
	// tombstones of their one file for both.
	secondary atomic.Bool
	// globalFloor: on a POP that is no bridge, the floor of every region
	// a bridge of its region sent last (floor.go). Held under mu.
	globalFloor store.Vector
	// tombstonesKept: why the last collection round that found old
	// tombstones could not collect any (keptBecause). Held under mu.
	tombstonesKept string

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type peer struct {
	name   string
	addr   string
	site   string
	siteID int // site's number in Node.sites; -1 while its metadata names none
	state  memberlist.NodeStateType
	node   *memberlist.Node
	vector vclock // its vector, from its last sync (or digest equal to this node's)
	// vectorDigest is vector's digest; digest is the digest of the
	// member's vector as last heard (it may be newer than vector).
	vectorDigest uint64
	digest       uint64
	// legacy: the member runs an older release, which sends and takes
	// whole vectors only (its syncs do not say it understands digests).
	legacy   bool
	vectorAt time.Time
	lag      time.Duration // commit-to-merge delay of its newest change merged here
	lagAt    time.Time
	since    time.Time // last state change
	syncAt   time.Time // last anti-entropy sent to it while dead
	joinAt   time.Time // last rejoin tried while dead
	leaving  bool      // said goodbye: its coming failure is a leave
	bridge   bool      // a bridge of this node's region (its metadata says so)
	// floor: on a bridge's global node, the floor of its region that the
	// member sent last (floor.go).
	floor store.Vector
	// served is how far this node's last anti-entropy reply to the member
	// brought each origin, and servedAt when: until the member's vector
	// shows it (or servedHold passes), that reply is taken to be on its
	// way, and nothing more is sent.
	served   store.Vector
	servedAt time.Time
}

// patient tells whether a dead member has been dead long enough to be
// tried only every DeadRetry, and if so whether a try is due now, given
// the last try. Called with n.mu held.
func (n *Node) patient(p *peer, last, now time.Time) (slow, due bool) {
	if now.Sub(p.since) < n.cfg.DeadPatience {
		return false, true
	}
	return true, now.Sub(last) >= n.cfg.DeadRetry
}

// Start joins the cluster and begins replicating st. Fields of cfg left
// zero take their DefaultConfig value.
func Start(st *store.Store, cfg Config) (*Node, error) {
	cfg = withDefaults(cfg)
	if cfg.Name == "" {
		return nil, errors.New("cluster: a node name is required")
	}
	if st.SiteID() == "" {
		return nil, errors.New("cluster: the routing table is read-only")
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	host, port, err := splitHostPort(cfg.Bind)
	if err != nil {
		return nil, fmt.Errorf("cluster: bind %q: %v", cfg.Bind, err)
	}
	n := &Node{cfg: cfg, st: st, log: cfg.Logger, inbox: make(chan []byte, inboxSize),
		syncWake: make(chan struct{}, 1), known: map[string]*peer{}, inflight: map[string]bool{}, streams: map[string][]queued{}, seedJoined: map[string]bool{},
		recent: map[uint64]vclock{}}
	n.ownSite = n.sites.id(st.SiteID())
	n.ctx, n.cancel = context.WithCancel(context.Background())

	mlc := memberlist.DefaultLANConfig()
	if cfg.Profile == "wan" {
		mlc = memberlist.DefaultWANConfig()
	}
	mlc.Name = cfg.Name
	mlc.Delegate = (*delegate)(n)
	mlc.Events = (*events)(n)
	mlc.Label = cfg.Cluster
	mlc.TCPTimeout = cfg.StreamTimeout
	// memberlist's LZW costs a 16 KiB table per message, probes
	// included (about 0.15 % of a core on an idle node, a third of what
	// the cluster costs then), and does not shrink messages of a few dozen
	// bytes; only a catch-up of a large table would travel smaller.
	// Compressed messages from other nodes are still read.
	mlc.EnableCompression = false
	mlc.Logger = log.New(&logWriter{log: n.log}, "", 0)
	if len(cfg.Keys) > 0 {
		kr, err := memberlist.NewKeyring(cfg.Keys[1:], cfg.Keys[0])
		if err != nil {
			return nil, fmt.Errorf("cluster: %v", err)
		}
		mlc.Keyring = kr
		n.keyring = kr
		mlc.GossipVerifyIncoming, mlc.GossipVerifyOutgoing = true, true
	}
	if cfg.Advertise != "" {
		ah, ap, err := splitHostPort(cfg.Advertise)
		if err != nil {
			return nil, fmt.Errorf("cluster: advertise %q: %v", cfg.Advertise, err)
		}
		mlc.AdvertiseAddr, mlc.AdvertisePort = ah, ap
	}
	shutdown := func() {}
	if cfg.Transport != nil {
		if port == 0 {
			return nil, fmt.Errorf("cluster: bind %q: a port is required with a transport of one's own", cfg.Bind)
		}
		mlc.BindAddr, mlc.BindPort = host, port
		if cfg.Advertise == "" {
			mlc.AdvertiseAddr, mlc.AdvertisePort = host, port
		}
		mlc.Transport = cfg.Transport
		shutdown = func() { cfg.Transport.Shutdown() }
	} else {
		nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{host}, BindPort: port, Logger: mlc.Logger})
		if err != nil {
			return nil, fmt.Errorf("cluster: listening on %s: %v", cfg.Bind, err)
		}
		if cfg.Advertise == "" {
			mlc.AdvertisePort = nt.GetAutoBindPort()
		}
		mlc.BindAddr, mlc.BindPort = host, nt.GetAutoBindPort()
		ft := &FaultTransport{inner: nt, self: net.JoinHostPort(host, strconv.Itoa(nt.GetAutoBindPort())), f: cfg.Faults}
		if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
			ft.local = ip
		}
		mlc.Transport = ft
		shutdown = func() { nt.Shutdown() }
	}
	if cfg.Memberlist != nil {
		cfg.Memberlist(mlc)
	}
	ml, err := memberlist.Create(mlc)
	if err != nil {
		shutdown()
		return nil, fmt.Errorf("cluster: %v", err)
	}
	n.ml = ml
	n.self = ml.LocalNode().Address()
	if seeds := n.seeds(); len(seeds) > 0 {
		if k, err := ml.Join(seeds); err != nil {
			n.log.Warn("cluster: no seed answered yet; retrying in the background", "join", seeds, "error", err)
		} else {
			n.log.Info("cluster: joined", "contacted", k, "members", ml.NumMembers())
			if k == len(seeds) {
				for _, s := range seeds {
					n.seedJoined[s] = true
				}
			}
		}
	}
	n.log.Info("cluster: started", "node", cfg.Name, "addr", ml.LocalNode().FullAddress().Addr,
		"site", st.SiteID(), "encrypted", len(cfg.Keys) > 0, "cluster", cfg.Cluster)
	reports := commitReports // read before the loops start: a test swaps it
	push := func() { n.pushLoop(reports) }
	for _, f := range []func(){n.receiveLoop, push, n.syncLoop, n.rejoinLoop, n.gcLoop} {
		n.wg.Add(1)
		go func() { defer n.wg.Done(); f() }()
	}
	return n, nil
}

// Addr is the address other nodes reach this one at.
func (n *Node) Addr() string { return n.self }

// Keyring is memberlist's keyring, for rotating keys on a running node.
// Nil when gossip is not encrypted.
func (n *Node) Keyring() *memberlist.Keyring { return n.keyring }

// Stop leaves the cluster (so others do not wait for it to time out) and
// stops replicating. The file is left open.
func (n *Node) Stop() error {
	bye := encodeLeave(n.cfg.Name)
	members := n.alive()
	for _, m := range members {
		n.ml.SendBestEffort(m, bye)
	}
	n.log.Info("cluster: leaving", "node", n.cfg.Name, "told", len(members))
	n.cancel()
	err := n.ml.Leave(time.Second)
	n.wg.Wait()
	return errors.Join(err, n.ml.Shutdown())
}

// Kill stops without leaving, as a crash would (tests).
func (n *Node) Kill() error {
	n.cancel()
	n.wg.Wait()
	return n.ml.Shutdown()
}

// fileChanged records that the file may hold something new and wakes
// anti-entropy to compare.
func (n *Node) fileChanged() {
	n.fileGen.Add(1)
	n.wakeSync()
}

// wakeSync wakes anti-entropy if it is resting.
func (n *Node) wakeSync() {
	select {
	case n.syncWake <- struct{}{}:
	default:
	}
}
