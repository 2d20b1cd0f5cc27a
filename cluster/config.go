package cluster

import (
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/memberlist"
)

// Config configures a cluster node. A field left zero takes its value from
// DefaultConfig.
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
	// Transport, when set, carries every packet and stream of this node
	// (memberlist's gossip and probes, pushes, anti-entropy) instead of
	// UDP and TCP sockets on Bind: a simulated network in benchmarks.
	// Bind must then name the address it answers at, with a port other
	// than 0; Faults is not applied to it.
	Transport memberlist.NodeAwareTransport

	// PushPoll is how often the file is checked for local commits where
	// the kernel does not report changes to files. Where it does (Linux),
	// a commit is pushed as soon as it is visible, and the file is checked
	// anyway every PushSafetyPoll.
	PushPoll       time.Duration
	PushSafetyPoll time.Duration
	SyncInterval   time.Duration // anti-entropy period, while some member may lack something
	RejoinInterval time.Duration // seed and lost-member rejoin period
	// A member dead for longer than DeadPatience (gone for good, or cut
	// off a long time) is sent anti-entropy and rejoined only every
	// DeadRetry instead of every period.
	DeadPatience time.Duration
	DeadRetry    time.Duration
	GCInterval   time.Duration // tombstone collection period
	TombstoneAge time.Duration // a tombstone is kept at least this long
	MaxMessage   int           // largest message accepted, bytes
	// StreamTimeout bounds a stream dial and exchange (memberlist's
	// TCPTimeout): a dial that hangs in a partition that drops packets
	// must not hold a member's stream slot for long.
	StreamTimeout time.Duration
	// Profile picks memberlist's failure detection timings: "lan"
	// (memberlist's DefaultLANConfig: a probe a second, answered within
	// 500 ms) for POPs a few milliseconds apart; "wan" (DefaultWANConfig:
	// a probe every 5 s, answered within 3 s, gossip every 500 ms to 4
	// members) for a cluster spanning continents, where a round trip of
	// 400 ms and a busy host make the LAN timings declare live members
	// dead, and those get no pushes until the next anti-entropy.
	Profile string
	// Memberlist, if set, adjusts memberlist's configuration last
	// (timings in tests).
	Memberlist func(*memberlist.Config)
	// OnMerge, if set, is called after a merge changed the file: rows
	// tells whether it changed rows (the routing table then reloads at
	// once instead of at its next poll) or only the version vector (the
	// merged changes had lost to newer values already here).
	OnMerge func(rows bool)
}

// DefaultConfig returns every default of a node; Start takes each field
// left zero from it. Name and Bind have none. Memberlist's own timings are
// its DefaultLANConfig.
func DefaultConfig() Config {
	return Config{
		Logger:  slog.Default(),
		Profile: "lan",
		// Where commits are not reported: a commit waits 2.5 ms on
		// average, at the price of 200 reads a second.
		PushPoll: 5 * time.Millisecond,
		// Where they are: only a change the kernel would not report (a
		// writer on another host of a network filesystem) waits for it.
		PushSafetyPoll: time.Second,
		// Anti-entropy runs only while some member's last known vector
		// differs from this node's; a lost push is repaired a period or
		// two later (changes younger than the push grace wait for the
		// next).
		SyncInterval:   500 * time.Millisecond,
		RejoinInterval: 2 * time.Second,
		// A cut that heals within minutes heals within one period; a
		// member that is gone for good costs a packet and a dial every
		// half minute, not every second.
		DeadPatience:  5 * time.Minute,
		DeadRetry:     30 * time.Second,
		GCInterval:    time.Minute,
		TombstoneAge:  10 * time.Minute,
		MaxMessage:    8 << 20,
		StreamTimeout: time.Second,
	}
}

// Protocol constants: not tunables, since every member must agree on them
// or they follow from the transport.
const (
	maxPacket    = 1000 // larger messages go over a stream
	chunkChanges = 2000 // changes per segment piece
	inboxSize    = 1024
	// streamQueue: large messages that wait for a member's busy stream.
	streamQueue = 4
	// A member that lacks more than serveBudget changes (a new POP
	// joining a large table) is served that many per sync. A reply of
	// more than holdAbove changes is not followed by another until the
	// member's vector shows it, or servedHold passes (a message lost):
	// each change is read and sent about once, where serving everything
	// at every sync read and sent the whole difference again while the
	// member was still merging it. Smaller replies (a heal's) go at every
	// sync, as before.
	serveBudget = 20000
	holdAbove   = 1000
	servedHold  = 2 * time.Second
	// replyBytes bounds the one message an anti-entropy reply is sent in
	// (serveBudget changes are about 1 MB): well under MaxMessage.
	replyBytes = 2 << 20
	// deadFanout: members believed dead that anti-entropy tries in one
	// period.
	deadFanout = 3
	// Changes learnt by repair are forwarded to forwardFanout members
	// (an epidemic where each forwards once misses e^-fanout of the
	// members: 14 % with 2, 5 % with 3, left to anti-entropy); changes
	// younger than forwardAge are taken for the origin's push.
	forwardFanout = 3
	forwardAge    = 2 * time.Second
	// pushGrace: anti-entropy leaves out changes younger than this, which
	// the origin's push is normally still delivering.
	pushGrace = 250 * time.Millisecond
	// A change notification that shows no new local commit is looked at
	// again after 1, 2, 4, ... 256 ms: the commit may become visible only
	// after the writer's sync of the WAL.
	settleFirst = time.Millisecond
	settleLast  = 256 * time.Millisecond
)

// withDefaults fills the zero fields of cfg from DefaultConfig.
func withDefaults(cfg Config) Config {
	d := DefaultConfig()
	if cfg.Logger == nil {
		cfg.Logger = d.Logger
	}
	for _, f := range []struct{ v, d *time.Duration }{
		{&cfg.PushPoll, &d.PushPoll},
		{&cfg.PushSafetyPoll, &d.PushSafetyPoll},
		{&cfg.SyncInterval, &d.SyncInterval},
		{&cfg.RejoinInterval, &d.RejoinInterval},
		{&cfg.DeadPatience, &d.DeadPatience},
		{&cfg.DeadRetry, &d.DeadRetry},
		{&cfg.GCInterval, &d.GCInterval},
		{&cfg.TombstoneAge, &d.TombstoneAge},
		{&cfg.StreamTimeout, &d.StreamTimeout},
	} {
		if *f.v <= 0 {
			*f.v = *f.d
		}
	}
	if cfg.Profile == "" {
		cfg.Profile = d.Profile
	}
	if cfg.MaxMessage <= 0 {
		cfg.MaxMessage = d.MaxMessage
	}
	return cfg
}

// validate reports what is wrong with a filled Config.
func (cfg Config) validate() error {
	if cfg.Name == "" {
		return fmt.Errorf("cluster: a node name is required")
	}
	if cfg.Profile != "lan" && cfg.Profile != "wan" {
		return fmt.Errorf("cluster: profile %q: it must be lan or wan", cfg.Profile)
	}
	for i, k := range cfg.Keys {
		if l := len(k); l != 16 && l != 24 && l != 32 {
			return fmt.Errorf("cluster: key %d is %d bytes; it must be 16, 24 or 32", i+1, l)
		}
	}
	return nil
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
