package cluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/rand/v2"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/edgeproxy/edgeproxy/store"
)

// Config configures a cluster node.
type Config struct {
	// Name is this node's unique name in the cluster (the POP's node).
	Name string
	// Bind is the host:port memberlist listens on (TCP and UDP). Port 0
	// picks a free port (tests).
	Bind string
	// Advertise is the host:port other nodes reach this one at, when it
	// differs from Bind (NAT). Optional.
	Advertise string
	// Join lists host:port addresses of other nodes. They are joined at
	// start and, while not members, every RejoinInterval, so a long
	// partition heals by itself.
	Join []string
	// Keys encrypt and authenticate gossip (AES-GCM, 16, 24 or 32 bytes).
	// The first is used to send; all are accepted when receiving, which
	// is how a key is rotated. Without keys, gossip is in clear.
	Keys [][]byte
	// Cluster is a label carried by every packet and stream; nodes with a
	// different label are ignored, so two clusters on one network never mix.
	Cluster string
	// Logger receives what the cluster does; slog.Default() if nil.
	Logger *slog.Logger
	// Faults, when set, injects loss, duplication, delay and partitions
	// into this node's transport (tests and benchmarks).
	Faults *Faults

	PushPoll       time.Duration // how often the file is checked for local commits; 5ms
	SyncInterval   time.Duration // anti-entropy period; 500ms
	RejoinInterval time.Duration // seed and lost-member rejoin period; 2s
	GCInterval     time.Duration // tombstone collection period; 1m
	TombstoneAge   time.Duration // a tombstone is kept at least this long; 10m
	MaxMessage     int           // largest message accepted, bytes; 8 MiB
	// Memberlist, if set, adjusts memberlist's configuration last
	// (timings in tests).
	Memberlist func(*memberlist.Config)
	// OnMerge, if set, is called after a merge changed the file (the
	// routing table reloads at once instead of at its next poll).
	OnMerge func()
}

const (
	defaultPushPoll     = 5 * time.Millisecond
	defaultSyncInterval = 500 * time.Millisecond
	defaultRejoin       = 2 * time.Second
	defaultGC           = time.Minute
	defaultTombstoneAge = 10 * time.Minute
	defaultMaxMessage   = 8 << 20
	maxPacket           = 1000 // larger messages go over a stream
	chunkChanges        = 2000 // changes per segment piece
	inboxSize           = 1024
	// pushGrace: anti-entropy leaves out changes younger than this, which
	// the origin's push is normally still delivering.
	pushGrace = 250 * time.Millisecond
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
	Pushes          atomic.Uint64 // local commits pushed (one per poll that found changes)
	TombstonesGC    atomic.Uint64
}

// Node is this POP's membership in the cluster and its replicator.
type Node struct {
	cfg     Config
	st      *store.Store
	log     *slog.Logger
	ml      *memberlist.Memberlist
	keyring *memberlist.Keyring
	inbox   chan []byte
	Stats   Stats

	mu       sync.Mutex
	known    map[string]*peer // by node name, including dead and left ones
	inflight map[string]bool  // a stream send or join in progress, by name or "join"

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type peer struct {
	name     string
	addr     string
	site     string
	state    memberlist.NodeStateType
	node     *memberlist.Node
	vector   store.Vector // its vector, from its last sync
	vectorAt time.Time
	lag      time.Duration // commit-to-merge delay of its newest change merged here
	lagAt    time.Time
	since    time.Time // last state change
	leaving  bool      // said goodbye: its coming failure is a leave
}

// Start joins the cluster and begins replicating st.
func Start(st *store.Store, cfg Config) (*Node, error) {
	if cfg.Name == "" {
		return nil, errors.New("cluster: a node name is required")
	}
	if st.SiteID() == "" {
		return nil, errors.New("cluster: the routing table is read-only")
	}
	setDefault(&cfg.PushPoll, defaultPushPoll)
	setDefault(&cfg.SyncInterval, defaultSyncInterval)
	setDefault(&cfg.RejoinInterval, defaultRejoin)
	setDefault(&cfg.GCInterval, defaultGC)
	setDefault(&cfg.TombstoneAge, defaultTombstoneAge)
	if cfg.MaxMessage <= 0 {
		cfg.MaxMessage = defaultMaxMessage
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	for i, k := range cfg.Keys {
		if l := len(k); l != 16 && l != 24 && l != 32 {
			return nil, fmt.Errorf("cluster: key %d is %d bytes; it must be 16, 24 or 32", i+1, l)
		}
	}
	host, port, err := splitHostPort(cfg.Bind)
	if err != nil {
		return nil, fmt.Errorf("cluster: bind %q: %v", cfg.Bind, err)
	}
	n := &Node{cfg: cfg, st: st, log: cfg.Logger, inbox: make(chan []byte, inboxSize),
		known: map[string]*peer{}, inflight: map[string]bool{}}
	n.ctx, n.cancel = context.WithCancel(context.Background())

	mlc := memberlist.DefaultLANConfig()
	mlc.Name = cfg.Name
	mlc.Delegate = (*delegate)(n)
	mlc.Events = (*events)(n)
	mlc.Label = cfg.Cluster
	// Streams carry anti-entropy; a dial that hangs (a partition that
	// drops packets) must not hold a member's stream slot for long.
	mlc.TCPTimeout = time.Second
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
	if cfg.Memberlist != nil {
		cfg.Memberlist(mlc)
	}
	ml, err := memberlist.Create(mlc)
	if err != nil {
		nt.Shutdown()
		return nil, fmt.Errorf("cluster: %v", err)
	}
	n.ml = ml
	if seeds := n.seeds(); len(seeds) > 0 {
		if k, err := ml.Join(seeds); err != nil {
			n.log.Warn("cluster: no seed answered yet; retrying in the background", "join", seeds, "error", err)
		} else {
			n.log.Info("cluster: joined", "contacted", k, "members", ml.NumMembers())
		}
	}
	n.log.Info("cluster: started", "node", cfg.Name, "addr", ml.LocalNode().FullAddress().Addr,
		"site", st.SiteID(), "encrypted", len(cfg.Keys) > 0, "cluster", cfg.Cluster)
	for _, f := range []func(){n.receiveLoop, n.pushLoop, n.syncLoop, n.rejoinLoop, n.gcLoop} {
		n.wg.Add(1)
		go func() { defer n.wg.Done(); f() }()
	}
	return n, nil
}

func setDefault(d *time.Duration, v time.Duration) {
	if *d <= 0 {
		*d = v
	}
}

func splitHostPort(s string) (string, int, error) {
	h, p, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port %q", p)
	}
	if h == "" {
		h = "0.0.0.0"
	}
	return h, port, nil
}

// Addr is the address other nodes reach this one at.
func (n *Node) Addr() string { return n.ml.LocalNode().Address() }

// Stop leaves the cluster (so others do not wait for it to time out) and
// stops replicating. The file is left open.
func (n *Node) Stop() error {
	bye := encodeLeave(n.cfg.Name)
	for _, m := range n.alive() {
		n.ml.SendBestEffort(m, bye)
	}
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

func (n *Node) seeds() []string {
	self := n.ml.LocalNode().Address()
	var out []string
	for _, s := range n.cfg.Join {
		if s != self && s != n.cfg.Bind && s != n.cfg.Advertise {
			out = append(out, s)
		}
	}
	return out
}

// --- memberlist delegates

type delegate Node

func (d *delegate) NodeMeta(limit int) []byte { return []byte(d.st.SiteID()) }

func (d *delegate) NotifyMsg(b []byte) {
	n := (*Node)(d)
	n.Stats.BytesRecv.Add(uint64(len(b)))
	if len(b) > n.cfg.MaxMessage {
		n.Stats.MessagesRefused.Add(1)
		n.log.Warn("cluster: message refused: too large", "bytes", len(b), "max", n.cfg.MaxMessage)
		return
	}
	select {
	case n.inbox <- append([]byte(nil), b...):
	default:
		// Anti-entropy brings whatever this loses.
		n.Stats.MessagesRefused.Add(1)
	}
}

func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *delegate) LocalState(join bool) []byte                { return nil }
func (d *delegate) MergeRemoteState(buf []byte, join bool)     {}

type events Node

// update records a member's state. memberlist never fills Node.State (it
// keeps the state in its private nodeState), so the state comes from the
// event: join and update mean alive, leave means failed — or left, if the
// member said goodbye first (msgLeave).
func (e *events) update(nd *memberlist.Node, state memberlist.NodeStateType) {
	n := (*Node)(e)
	if nd.Name == n.cfg.Name {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	p := n.known[nd.Name]
	if p == nil {
		p = &peer{name: nd.Name}
		n.known[nd.Name] = p
	}
	if state == memberlist.StateDead && p.leaving {
		state = memberlist.StateLeft
	}
	if state == memberlist.StateAlive {
		p.leaving = false
	}
	if p.state != state || p.since.IsZero() {
		p.since = time.Now()
	}
	p.addr, p.site, p.state = nd.Address(), string(nd.Meta), state
	cp := *nd
	p.node = &cp
}

func (e *events) NotifyJoin(nd *memberlist.Node) {
	e.update(nd, memberlist.StateAlive)
	e.log.Info("cluster: member up", "member", nd.Name, "addr", nd.Address())
}

func (e *events) NotifyLeave(nd *memberlist.Node) {
	e.update(nd, memberlist.StateDead)
	how := "failed"
	e.mu.Lock()
	if p := e.known[nd.Name]; p != nil && p.state == memberlist.StateLeft {
		how = "left"
	}
	e.mu.Unlock()
	e.log.Warn("cluster: member down", "member", nd.Name, "addr", nd.Address(), "how", how)
}

func (e *events) NotifyUpdate(nd *memberlist.Node) { e.update(nd, memberlist.StateAlive) }

// logWriter turns memberlist's log lines into slog records: [ERR] and [WARN]
// (a packet that fails to decrypt, a wrong label, a bad message) are
// warnings, the rest debug.
type logWriter struct{ log *slog.Logger }

func (w *logWriter) Write(p []byte) (int, error) {
	sc := bufio.NewScanner(strings.NewReader(string(p)))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.Contains(line, "[ERR]"), strings.Contains(line, "[WARN]"):
			w.log.Warn("cluster: " + strings.TrimSpace(line))
		default:
			w.log.Debug("cluster: " + strings.TrimSpace(line))
		}
	}
	return len(p), nil
}

var _ io.Writer = (*logWriter)(nil)

// --- sending

func (n *Node) alive() []*memberlist.Node {
	var out []*memberlist.Node
	for _, m := range n.ml.Members() {
		if m.Name != n.cfg.Name && m.State == memberlist.StateAlive {
			out = append(out, m)
		}
	}
	return out
}

// send delivers a message to a member: small ones as one packet (UDP), large
// ones over a stream in the background, one stream per member at a time
// (anti-entropy retries what is skipped or lost).
func (n *Node) send(to *memberlist.Node, msg []byte, changes int) {
	count := func() {
		n.Stats.MessagesSent.Add(1)
		n.Stats.BytesSent.Add(uint64(len(msg)))
		n.Stats.ChangesSent.Add(uint64(changes))
	}
	if len(msg) <= maxPacket {
		if err := n.ml.SendBestEffort(to, msg); err == nil {
			count()
			return
		}
	}
	n.mu.Lock()
	if n.inflight[to.Name] {
		n.mu.Unlock()
		return
	}
	n.inflight[to.Name] = true
	n.mu.Unlock()
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer func() { n.mu.Lock(); delete(n.inflight, to.Name); n.mu.Unlock() }()
		if err := n.ml.SendReliable(to, msg); err != nil {
			n.log.Debug("cluster: send failed", "member", to.Name, "error", err)
			return
		}
		count()
	}()
}

// sendSegments packs segments into messages of bounded size. It returns
// the bytes handed to the transport (all messages, all members).
func (n *Node) sendSegments(to []*memberlist.Node, segs []store.Segment) int {
	total := 0
	const budget = 512 << 10
	var batch []store.Segment
	size, changes := 0, 0
	flush := func() {
		if len(batch) == 0 {
			return
		}
		msg := encodeChanges(batch)
		for _, m := range to {
			n.send(m, msg, changes)
		}
		total += len(msg) * len(to)
		batch, size, changes = nil, 0, 0
	}
	for _, s := range segs {
		for _, piece := range store.Split(s, chunkChanges) {
			est := 64
			for _, c := range piece.Changes {
				est += len(c.Table) + len(c.PK) + len(c.Column) + 40
				if v, ok := c.Value.(string); ok {
					est += len(v)
				} else if v, ok := c.Value.([]byte); ok {
					est += len(v)
				}
			}
			if size+est > budget {
				flush()
			}
			batch = append(batch, piece)
			size += est
			changes += len(piece.Changes)
		}
	}
	flush()
	return total
}

// pushLoop sends every local commit to all members as soon as it is seen.
func (n *Node) pushLoop() {
	last, err := n.st.DBVersion(n.ctx)
	if err != nil {
		n.log.Error("cluster: reading the local version", "error", err)
	}
	t := time.NewTicker(n.cfg.PushPoll)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		v, err := n.st.DBVersion(n.ctx)
		if err != nil || v <= last {
			continue
		}
		ch, err := n.st.ChangesSince(n.ctx, n.st.SiteID(), last, v)
		if err != nil {
			n.log.Error("cluster: reading local changes", "error", err)
			continue
		}
		if to := n.alive(); len(to) > 0 {
			b := n.sendSegments(to, []store.Segment{{Origin: n.st.SiteID(), From: last, To: v, Changes: ch}})
			n.Stats.BytesPushed.Add(uint64(b))
			n.Stats.Pushes.Add(1)
		}
		last = v
	}
}

// syncLoop runs anti-entropy: it sends its version vector to one random
// live member each period, and now and then to a member it believes dead
// (a healed partition is found that way before memberlist notices).
func (n *Node) syncLoop() {
	t := time.NewTicker(n.cfg.SyncInterval)
	defer t.Stop()
	var prev store.Vector
	for i := 0; ; i++ {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		vec, err := n.st.Vector(n.ctx)
		if err != nil {
			continue
		}
		msg := encodeSync(syncMsg{From: n.cfg.Name, WantReply: true, Vector: vec})
		// One random live member, plus one member whose last known
		// vector lags (it lacked what we had a period ago, which pushes
		// should have brought, or it has what we lack), dead ones
		// included: after a partition heals, both sides find each other
		// in the first period.
		var first string
		if alive := n.alive(); len(alive) > 0 {
			m := alive[rand.IntN(len(alive))]
			first = m.Name
			n.send(m, msg, 0)
		}
		n.mu.Lock()
		var differing, differingDead, dead []*memberlist.Node
		for _, p := range n.known {
			if p.node == nil || p.state == memberlist.StateLeft || p.name == first {
				continue
			}
			switch {
			case (p.vector == nil || lagging(p.vector, prev, vec)) && p.state == memberlist.StateDead:
				differingDead = append(differingDead, p.node)
			case p.vector == nil || lagging(p.vector, prev, vec):
				differing = append(differing, p.node)
			case p.state == memberlist.StateDead:
				dead = append(dead, p.node)
			}
		}
		n.mu.Unlock()
		prev = vec
		if len(differing) > 0 {
			n.send(differing[rand.IntN(len(differing))], msg, 0)
		}
		// Lagging members believed dead may be back (a healed cut): each
		// gets a packet every period, so the cut heals within one.
		for _, m := range differingDead {
			n.send(m, msg, 0)
		}
		if i%4 == 0 && len(dead) > 0 {
			n.send(dead[rand.IntN(len(dead))], msg, 0)
		}
	}
}

// lagging tells whether a peer's vector lacks something ours had one
// period ago (prev), or holds something ours lacks now.
func lagging(peer, prev, now store.Vector) bool {
	for k, v := range prev {
		if peer[k] < v {
			return true
		}
	}
	for k, v := range peer {
		if v > now[k] {
			return true
		}
	}
	return false
}

// rejoinLoop joins seeds and failed members that are not members now.
func (n *Node) rejoinLoop() {
	t := time.NewTicker(n.cfg.RejoinInterval)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		alive := map[string]bool{}
		for _, m := range n.ml.Members() {
			alive[m.Address()] = true
		}
		want := map[string]bool{}
		for _, s := range n.seeds() {
			if !alive[s] {
				want[s] = true
			}
		}
		n.mu.Lock()
		for _, p := range n.known {
			if p.state == memberlist.StateDead && !alive[p.addr] {
				want[p.addr] = true
			}
		}
		busy := n.inflight["join"]
		if len(want) > 0 && !busy {
			n.inflight["join"] = true
		}
		n.mu.Unlock()
		if len(want) == 0 || busy {
			continue
		}
		addrs := make([]string, 0, len(want))
		for a := range want {
			addrs = append(addrs, a)
		}
		sort.Strings(addrs)
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			defer func() { n.mu.Lock(); delete(n.inflight, "join"); n.mu.Unlock() }()
			if k, err := n.ml.Join(addrs); err == nil {
				n.log.Info("cluster: rejoined", "contacted", k, "tried", addrs)
			}
		}()
	}
}

// --- receiving

func (n *Node) receiveLoop() {
	for {
		var batch [][]byte
		select {
		case <-n.ctx.Done():
			return
		case b := <-n.inbox:
			batch = append(batch, b)
		}
	drain:
		for len(batch) < 64 {
			select {
			case b := <-n.inbox:
				batch = append(batch, b)
			default:
				break drain
			}
		}
		var segs []store.Segment
		for _, b := range batch {
			n.Stats.MessagesRecv.Add(1)
			m, err := decode(b)
			if err != nil {
				n.Stats.MessagesRefused.Add(1)
				n.log.Warn("cluster: message refused", "bytes", len(b), "error", err)
				continue
			}
			switch m := m.(type) {
			case []store.Segment:
				segs = append(segs, m...)
			case syncMsg:
				n.handleSync(m)
			case leaveMsg:
				n.mu.Lock()
				if p := n.known[string(m)]; p != nil {
					p.leaving = true
				}
				n.mu.Unlock()
			}
		}
		if len(segs) > 0 {
			n.apply(segs)
		}
	}
}

func (n *Node) apply(segs []store.Segment) {
	now := time.Now()
	res, err := n.st.Apply(n.ctx, segs, now)
	if err != nil {
		if n.ctx.Err() == nil {
			n.log.Error("cluster: merging changes; anti-entropy will retry", "error", err)
		}
		return
	}
	n.log.Debug("cluster: merged", "segments", len(segs), "applied", res.Applied, "stale", res.Stale, "advanced", len(res.Advanced))
	if res.Applied > 0 && n.cfg.OnMerge != nil {
		n.cfg.OnMerge()
	}
	n.Stats.ChangesApplied.Add(uint64(res.Applied))
	n.Stats.ChangesStale.Add(uint64(res.Stale))
	n.Stats.ChangesRefused.Add(uint64(len(res.Refused)))
	for i, r := range res.Refused {
		if i == 5 {
			n.log.Warn("cluster: more changes refused", "count", len(res.Refused)-5)
			break
		}
		n.log.Warn("cluster: change refused; not marked as seen", "origin", r.Change.Site, "table", r.Change.Table,
			"pk", r.Change.PK, "column", r.Change.Column, "reason", r.Reason)
	}
	// Replication lag per origin: commit (its HLC) to merged here.
	newest := map[string]uint64{}
	for _, s := range segs {
		for _, c := range s.Changes {
			newest[s.Origin] = max(newest[s.Origin], c.HLC)
		}
	}
	n.mu.Lock()
	for _, p := range n.known {
		if h, ok := newest[p.site]; ok && h > 0 {
			p.lag, p.lagAt = max(0, now.Sub(store.HLCTime(h))), now
		}
	}
	n.mu.Unlock()
}

func (n *Node) handleSync(m syncMsg) {
	n.mu.Lock()
	p := n.known[m.From]
	var to *memberlist.Node
	if p != nil {
		p.vector, p.vectorAt = m.Vector, time.Now()
		to = p.node
	}
	n.mu.Unlock()
	if to == nil {
		return // not a member (yet): it will ask again
	}
	own, err := n.st.DBVersion(n.ctx)
	if err != nil {
		return
	}
	if v := m.Vector[n.st.SiteID()]; v > own {
		// The peer knows this site further than the file does: the file
		// was restored in place from an older copy. New changes must not
		// reuse versions the cluster has seen.
		n.log.Warn("cluster: a peer has seen newer versions of this file than it holds (restored from a backup?); skipping ahead",
			"peer", m.From, "peer_knows", v, "local", own)
		if err := n.st.SetVersion(n.ctx, v); err != nil {
			n.log.Error("cluster: raising the local version", "error", err)
		}
	}
	segs, err := n.st.Missing(n.ctx, m.Vector, chunkChanges, store.MakeHLC(time.Now().Add(-pushGrace), 0))
	if err != nil {
		n.log.Error("cluster: reading changes for a peer", "peer", m.From, "error", err)
		return
	}
	if len(segs) > 0 {
		n.sendSegments([]*memberlist.Node{to}, segs)
	}
	n.log.Debug("cluster: sync", "from", m.From, "reply", m.WantReply, "segments", len(segs))
	if m.WantReply {
		mine, err := n.st.Vector(n.ctx)
		if err != nil {
			return
		}
		// Always answer with our vector: the peer then sends what it has
		// that we lack, and its view of us is fresh (a stale view would
		// make it keep targeting us).
		n.send(to, encodeSync(syncMsg{From: n.cfg.Name, Vector: mine}), 0)
	}
}

// --- tombstones

// gcLoop forgets tombstones every member has seen: only when the vector of
// every member not known to have left is at hand.
func (n *Node) gcLoop() {
	t := time.NewTicker(n.cfg.GCInterval)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		seen, err := n.st.Vector(n.ctx)
		if err != nil {
			continue
		}
		complete := true
		n.mu.Lock()
		for _, p := range n.known {
			if p.state == memberlist.StateLeft {
				continue
			}
			if p.vector == nil {
				complete = false
				break
			}
			for site, v := range seen {
				seen[site] = min(v, p.vector[site])
			}
		}
		n.mu.Unlock()
		if !complete {
			continue
		}
		k, err := n.st.CollectTombstones(n.ctx, seen, time.Now().Add(-n.cfg.TombstoneAge))
		if err != nil {
			n.log.Error("cluster: collecting tombstones", "error", err)
			continue
		}
		if k > 0 {
			n.Stats.TombstonesGC.Add(uint64(k))
			n.log.Info("cluster: tombstones collected", "count", k)
		}
	}
}

// --- status

// MemberStatus is one member as this node sees it.
type MemberStatus struct {
	Name  string    `json:"name"`
	Addr  string    `json:"addr"`
	Site  string    `json:"site,omitempty"`
	State string    `json:"state"`
	Since time.Time `json:"since"`
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

// Status reports members, versions and lag.
func (n *Node) Status(ctx context.Context) Status {
	st := Status{Node: n.cfg.Name, Addr: n.ml.LocalNode().Address(), Cluster: n.cfg.Cluster,
		Encrypted: len(n.cfg.Keys) > 0, Site: n.st.SiteID(), Counts: map[string]int{"alive": 1, "dead": 0, "left": 0},
		Health: n.ml.GetHealthScore()}
	st.Vector, _ = n.st.Vector(ctx)
	st.DBVersion = st.Vector[st.Site]
	live := map[string]memberlist.NodeStateType{}
	for _, m := range n.ml.Members() {
		live[m.Name] = m.State
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, p := range n.known {
		state := p.state
		if s, ok := live[p.name]; ok {
			state = s
		}
		ms := MemberStatus{Name: p.name, Addr: p.addr, Site: p.site, State: stateName(state), Since: p.since,
			Behind: -1, LagMS: -1, Vector: p.vector, VectorAt: p.vectorAt, LagAt: p.lagAt}
		if p.vector != nil {
			ms.Behind = int64(st.DBVersion) - int64(p.vector[st.Site])
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

// Keyring is memberlist's keyring, for rotating keys on a running node.
// Nil when gossip is not encrypted.
func (n *Node) Keyring() *memberlist.Keyring { return n.keyring }
