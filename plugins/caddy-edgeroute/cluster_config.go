package edgeroute

import (
	"encoding/base64"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/edgeproxy/edgeproxy/pop"
)

// ClusterConfig is the `cluster` block: replication of the routing table
// between POPs (memberlist membership, CRDT merge of the SQLite rows).
// Without it nothing listens and the POP runs alone.
type ClusterConfig struct {
	// Bind is the host:port of the cluster listener (TCP and UDP).
	Bind string `json:"bind"`
	// Advertise is the host:port other POPs reach this one at, if it
	// differs from Bind (NAT).
	Advertise string `json:"advertise,omitempty"`
	// Join lists host:port of other POPs. Joined at start and retried in
	// the background while they are not members.
	Join []string `json:"join,omitempty"`
	// Keys are base64 AES keys of 16, 24 or 32 bytes, placeholders such as
	// {env.EDGE_CLUSTER_KEY} allowed. The first encrypts; every one is
	// accepted when decrypting (key rotation). With a key, unencrypted or
	// unauthenticated gossip is refused.
	Keys []string `json:"keys,omitempty"`
	// Name labels the cluster: POPs with another name are ignored.
	Name string `json:"name,omitempty"`
	// SyncInterval is the anti-entropy period (default 500ms).
	SyncInterval caddy.Duration `json:"sync_interval,omitempty"`
	// RejoinInterval is how often lost members and seeds are rejoined
	// (default 2s).
	RejoinInterval caddy.Duration `json:"rejoin_interval,omitempty"`
	// TombstoneAge is how long a deleted row's tombstone is kept at least,
	// after every member has it (default 10m).
	TombstoneAge caddy.Duration `json:"tombstone_age,omitempty"`
	// Profile is memberlist's failure detection timing: "lan" (default; a
	// probe a second, answered within 500 ms) or "wan" (a probe every 5 s,
	// answered within 3 s), for a cluster spanning continents or past 100
	// POPs, where the LAN timings declare live members dead.
	Profile string `json:"profile,omitempty"`
	// Insecure allows a cluster without a key on an address other than
	// loopback: anyone who reaches the port can then rewrite where
	// traffic goes. For labs only; a warning is logged at every start.
	Insecure bool `json:"insecure,omitempty"`
	// Bridge makes this POP one of its region's bridges (see
	// BridgeConfig). Past a few hundred POPs, each region is a cluster of
	// its own and a few POPs per region bridge them.
	Bridge *BridgeConfig `json:"bridge,omitempty"`

	keys [][]byte
}

// BridgeConfig is the `bridge` block inside `cluster`: a second cluster
// listener, in a global cluster of every region's bridges, on the same
// file and keys. What the POP merges from its region it relays at once to
// the other bridges, and what it merges from them to its region.
type BridgeConfig struct {
	// Bind is the host:port of the global cluster listener.
	Bind string `json:"bind"`
	// Advertise is the host:port other bridges reach this one at, if it
	// differs from Bind.
	Advertise string `json:"advertise,omitempty"`
	// Join lists host:port of bridges of other regions.
	Join []string `json:"join,omitempty"`
	// Name labels the global cluster; it must differ from the region's.
	Name string `json:"name"`
	// Profile is the global cluster's memberlist timing (default wan).
	Profile string `json:"profile,omitempty"`
}

// unmarshalCluster parses, with the dispenser on the `cluster` token:
//
//	cluster {
//		bind      <host:port>
//		advertise <host:port>
//		join      <host:port>...
//		key       <base64> [<older base64>...]
//		name      <cluster name>
//		sync_interval   <duration>
//		rejoin_interval <duration>
//		tombstone_age   <duration>
//		profile         lan|wan
//		insecure
//		bridge {
//			bind      <host:port>
//			advertise <host:port>
//			join      <host:port>...
//			name      <global cluster name>
//			profile   lan|wan
//		}
//	}
//
// A cluster whose bind address is not loopback needs a key; `insecure`
// runs it in clear anyway. The bridge uses the cluster's keys.
func (a *App) unmarshalCluster(d *caddyfile.Dispenser) error {
	if d.NextArg() {
		return d.Errf("edgeroute: cluster: unexpected argument %q: options go in a block", d.Val())
	}
	if a.Cluster != nil {
		return d.Err("edgeroute: cluster: only one cluster block is allowed")
	}
	c := new(ClusterConfig)
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if seen[opt] {
			return d.Errf("edgeroute: cluster: %s given twice (join and key take several values on one line)", opt)
		}
		seen[opt] = true
		args := d.RemainingArgs()
		switch opt {
		case "bridge":
			if len(args) != 0 {
				return d.Err("edgeroute: cluster: bridge takes a block, not values")
			}
			b, err := unmarshalBridge(d)
			if err != nil {
				return err
			}
			c.Bridge = b
		case "insecure":
			if len(args) != 0 {
				return d.Err("edgeroute: cluster: insecure takes no value")
			}
			c.Insecure = true
		case "profile":
			if len(args) != 1 || (args[0] != "lan" && args[0] != "wan") {
				return d.Err("edgeroute: cluster: profile takes lan or wan")
			}
			c.Profile = args[0]
		case "bind", "advertise", "name":
			if err := setOne(d, "edgeroute: cluster", opt, args, map[string]*string{"bind": &c.Bind, "advertise": &c.Advertise, "name": &c.Name}); err != nil {
				return err
			}
		case "join":
			if len(args) == 0 {
				return d.Err("edgeroute: cluster: join needs at least one host:port")
			}
			c.Join = append(c.Join, args...)
		case "key":
			if len(args) == 0 {
				return d.Err("edgeroute: cluster: key needs a base64 key (the first encrypts; more are accepted for rotation)")
			}
			c.Keys = append(c.Keys, args...)
		case "sync_interval", "rejoin_interval", "tombstone_age":
			if len(args) != 1 {
				return d.Errf("edgeroute: cluster: %s takes exactly one duration", opt)
			}
			dur, err := parseDuration(args[0], false)
			if err != nil {
				return d.Errf("edgeroute: cluster: %s: %v", opt, err)
			}
			switch opt {
			case "sync_interval":
				c.SyncInterval = dur
			case "rejoin_interval":
				c.RejoinInterval = dur
			default:
				c.TombstoneAge = dur
			}
		default:
			return d.Errf("edgeroute: cluster: unknown option %q (known: bind, advertise, join, key, name, sync_interval, rejoin_interval, tombstone_age, profile, insecure, bridge)", opt)
		}
	}
	if c.Bind == "" {
		return d.Err("edgeroute: cluster: bind <host:port> is required")
	}
	a.Cluster = c
	return nil
}

// unmarshalBridge parses the bridge block, with the dispenser on its
// token.
func unmarshalBridge(d *caddyfile.Dispenser) (*BridgeConfig, error) {
	b := new(BridgeConfig)
	single := map[string]*string{"bind": &b.Bind, "advertise": &b.Advertise, "name": &b.Name, "profile": &b.Profile}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if seen[opt] {
			return nil, d.Errf("edgeroute: cluster: bridge: %s given twice (join takes several values on one line)", opt)
		}
		seen[opt] = true
		args := d.RemainingArgs()
		if _, ok := single[opt]; ok {
			if err := setOne(d, "edgeroute: cluster: bridge", opt, args, single); err != nil {
				return nil, err
			}
			continue
		}
		if opt != "join" {
			return nil, d.Errf("edgeroute: cluster: bridge: unknown option %q (known: bind, advertise, join, name, profile)", opt)
		}
		if len(args) == 0 {
			return nil, d.Err("edgeroute: cluster: bridge: join needs at least one host:port")
		}
		b.Join = append(b.Join, args...)
	}
	return b, nil
}

// setOne stores the value of opt, an option that takes exactly one, in
// its field of fields; prefix starts the error.
func setOne(d *caddyfile.Dispenser, prefix, opt string, args []string, fields map[string]*string) error {
	if len(args) != 1 {
		return d.Errf("%s: %s takes exactly one value", prefix, opt)
	}
	*fields[opt] = args[0]
	return nil
}

// checkListener checks one cluster listener's addresses and profile (the
// cluster's own, or its bridge's); prefix starts every error.
func checkListener(prefix, bind, advertise string, join []string, profile string) error {
	if bind == "" {
		return fmt.Errorf("%s: bind <host:port> is required", prefix)
	}
	if err := checkHostPort(prefix, "bind", bind); err != nil {
		return err
	}
	if advertise != "" {
		if err := checkHostPort(prefix, "advertise", advertise); err != nil {
			return err
		}
	}
	for _, j := range join {
		if err := checkHostPort(prefix, "join", j); err != nil {
			return err
		}
	}
	if profile != "" && profile != "lan" && profile != "wan" {
		return fmt.Errorf("%s: profile %q: it must be lan or wan", prefix, profile)
	}
	return nil
}

func checkHostPort(prefix, what, s string) error {
	h, p, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%s: %s %q: use host:port (%v)", prefix, what, s, err)
	}
	if n, err := strconv.Atoi(p); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%s: %s %q: bad port", prefix, what, s)
	}
	if what == "advertise" && (h == "" || net.ParseIP(h) == nil) {
		return fmt.Errorf("%s: advertise %q: must be an IP address and port", prefix, s)
	}
	return nil
}

// validate checks addresses and decodes the keys (after placeholders).
func (c *ClusterConfig) validate() error {
	if err := checkListener("edgeroute: cluster", c.Bind, c.Advertise, c.Join, c.Profile); err != nil {
		return err
	}
	if c.SyncInterval < 0 || c.RejoinInterval < 0 || c.TombstoneAge < 0 {
		return fmt.Errorf("edgeroute: cluster: durations must be positive")
	}
	if b := c.Bridge; b != nil {
		if err := b.validate(c); err != nil {
			return err
		}
	}
	repl := caddy.NewReplacer()
	c.keys = nil
	for i, k := range c.Keys {
		v := strings.TrimSpace(repl.ReplaceAll(k, ""))
		if v == "" {
			return fmt.Errorf("edgeroute: cluster: key %d is empty (is the environment variable set?)", i+1)
		}
		raw, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			return fmt.Errorf("edgeroute: cluster: key %d is not base64: %v", i+1, err)
		}
		if l := len(raw); l != 16 && l != 24 && l != 32 {
			return fmt.Errorf("edgeroute: cluster: key %d is %d bytes; it must be 16, 24 or 32 (e.g. `openssl rand -base64 32`)", i+1, l)
		}
		c.keys = append(c.keys, raw)
	}
	for _, bind := range c.binds() {
		if len(c.keys) == 0 && !c.Insecure && !loopbackBind(bind) {
			return fmt.Errorf("edgeroute: cluster: bind %s is not a loopback address and the cluster has no key: "+
				"anyone who reaches it could rewrite the routing table; set key (e.g. key {env.EDGE_CLUSTER_KEY}, "+
				"made with `openssl rand -base64 32`) or, for a lab, insecure", bind)
		}
	}
	return nil
}

// binds lists the cluster's listeners: its own and the bridge's.
func (c *ClusterConfig) binds() []string {
	if c.Bridge != nil {
		return []string{c.Bind, c.Bridge.Bind}
	}
	return []string{c.Bind}
}

// validate checks the bridge block of cluster c.
func (b *BridgeConfig) validate(c *ClusterConfig) error {
	if err := checkListener("edgeroute: cluster: bridge", b.Bind, b.Advertise, b.Join, b.Profile); err != nil {
		return err
	}
	if b.Bind == c.Bind {
		return fmt.Errorf("edgeroute: cluster: bridge: bind %s is the cluster's own listener; the global cluster needs another port", b.Bind)
	}
	if b.Name == "" || b.Name == c.Name {
		return fmt.Errorf("edgeroute: cluster: bridge: name the global cluster, with a name other than the region's (%q)", c.Name)
	}
	return nil
}

// loopbackBind reports whether a bind address is reachable from this host
// only.
func loopbackBind(hostport string) bool {
	h, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// popConfig is the cluster block as the POP runtime takes it.
func (c *ClusterConfig) popConfig() *pop.ClusterConfig {
	if c == nil {
		return nil
	}
	pc := &pop.ClusterConfig{Bind: c.Bind, Advertise: c.Advertise, Join: c.Join, Keys: c.keys, Name: c.Name,
		SyncInterval: time.Duration(c.SyncInterval), RejoinInterval: time.Duration(c.RejoinInterval),
		TombstoneAge: time.Duration(c.TombstoneAge), Profile: c.Profile}
	if b := c.Bridge; b != nil {
		// Bridges are in different regions by design: across continents
		// the LAN timings declare live bridges dead.
		profile := b.Profile
		if profile == "" {
			profile = "wan"
		}
		pc.Bridge = &pop.BridgeConfig{Bind: b.Bind, Advertise: b.Advertise, Join: b.Join, Name: b.Name, Profile: profile}
	}
	return pc
}

func (a *App) provisionCluster(ctx caddy.Context) error {
	if a.Cluster == nil {
		return nil
	}
	if err := a.Cluster.validate(); err != nil {
		return err
	}
	if a.Cluster.Insecure && len(a.Cluster.keys) == 0 {
		a.logger.Warn("cluster runs without a key (insecure): replication is in clear and unauthenticated; anyone who reaches the bind address can rewrite where traffic goes",
			zap.Strings("bind", a.Cluster.binds()))
	}
	return registerClusterMetrics(ctx, a.rt)
}
