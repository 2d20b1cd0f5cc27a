package bgp

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/edgeproxy/edgeproxy/anycast"
)

// ASN is an AS number: in JSON a number (65101) or a string ("65101", or
// asdot "1.10").
type ASN string

// UnmarshalJSON accepts a number or a string.
func (a *ASN) UnmarshalJSON(b []byte) error {
	*a = ASN(strings.Trim(strings.TrimSpace(string(b)), `"`))
	return nil
}

// PeerConfig is one BGP neighbour.
type PeerConfig struct {
	// Address is the neighbour's IPv4 or IPv6 address.
	Address string `json:"address"`
	// RemoteAS is the neighbour's AS number (required).
	RemoteAS ASN `json:"remote_as"`
	// LocalAddress is the session's source address. Default: chosen by
	// the kernel.
	LocalAddress string `json:"local_address,omitempty"`
	// Port is the neighbour's TCP port. Default 179.
	Port int `json:"port,omitempty"`
	// Multihop allows an eBGP session this many hops away (TTL). Default:
	// directly connected.
	Multihop int `json:"multihop,omitempty"`
	// Password turns on TCP MD5 signatures (RFC 2385). Use a placeholder
	// such as {env.BGP_PASSWORD}; it is never logged.
	Password string `json:"password,omitempty"`
	// Hold is the hold time offered; keepalives go every hold/3.
	// Default 90s.
	Hold caddy.Duration `json:"hold,omitempty"`
	// ConnectRetry is the time between two attempts to dial. Default 5s.
	ConnectRetry caddy.Duration `json:"connect_retry,omitempty"`
	// Families the session carries: ipv4, ipv6. Default: the family of
	// Address.
	Families []string `json:"families,omitempty"`
	// Passive waits for the neighbour to connect (needs listen).
	Passive bool `json:"passive,omitempty"`
}

// AnnounceConfig is a group of anycast prefixes with one condition.
type AnnounceConfig struct {
	// Prefixes are IPv4 or IPv6 prefixes, e.g. 192.0.2.1/32.
	Prefixes []string `json:"prefixes"`
	// When names the app whose routable backends the announcement
	// follows. Default: announced while the POP serves.
	When string `json:"when,omitempty"`
	// Min is the least routable backends of When. Default 1.
	Min int `json:"min,omitempty"`
	// Assign puts the addresses on this interface while the app runs.
	Assign string `json:"assign,omitempty"`
	// NextHop is "self" (default) or an address.
	NextHop string `json:"next_hop,omitempty"`
	// MED is the MULTI_EXIT_DISC sent.
	MED *uint32 `json:"med,omitempty"`
	// Communities (high:low) and LargeCommunities (a:b:c) attached.
	Communities      []string `json:"communities,omitempty"`
	LargeCommunities []string `json:"large_communities,omitempty"`
	// Prepend adds the POP's AS this many extra times.
	Prepend int `json:"prepend,omitempty"`
	// Rise and Fall: consecutive observations of the condition holding
	// (failing) that announce (withdraw). Defaults 2 and 1.
	Rise int `json:"rise,omitempty"`
	Fall int `json:"fall,omitempty"`
	// AnnounceDelay holds the first announcement after start. Default 2s.
	AnnounceDelay *caddy.Duration `json:"announce_delay,omitempty"`
}

// DrainConfig is how prefixes leave when the POP drains or stops.
type DrainConfig struct {
	// Communities attached while draining. Default 65535:0
	// (GRACEFUL_SHUTDOWN, RFC 8326).
	Communities      []string `json:"communities,omitempty"`
	LargeCommunities []string `json:"large_communities,omitempty"`
	Prepend          int      `json:"prepend,omitempty"`
	MED              *uint32  `json:"med,omitempty"`
	// Wait is how long the drained announcement stays before the
	// withdraw. Default 10s.
	Wait *caddy.Duration `json:"wait,omitempty"`
}

// core turns the JSON config into the speaker's config, with every default
// filled in and every value checked; errors name the option.
func (a *App) core() (anycast.Config, error) {
	d := anycast.DefaultConfig()
	var c anycast.Config
	var err error
	if a.ASN == "" {
		return c, fmt.Errorf("asn is required")
	}
	if c.ASN, err = anycast.ParseASN(string(a.ASN)); err != nil {
		return c, fmt.Errorf("asn: %v", err)
	}
	if a.RouterID == "" {
		return c, fmt.Errorf("router_id is required")
	}
	if c.RouterID, err = anycast.ParseRouterID(a.RouterID); err != nil {
		return c, fmt.Errorf("router_id: %v", err)
	}
	if err := parseListen(a.Listen, d, &c); err != nil {
		return c, fmt.Errorf("listen: %v", err)
	}
	for _, p := range a.Peers {
		peer, err := corePeer(p, d)
		if err != nil {
			return c, err
		}
		c.Peers = append(c.Peers, peer)
	}
	for _, an := range a.Announce {
		ca, err := coreAnnounce(an, d)
		if err != nil {
			return c, err
		}
		c.Announces = append(c.Announces, ca)
	}
	drain := a.Drain
	if drain == nil {
		drain = new(DrainConfig)
	}
	if c.Drain.Communities, err = communities(drain.Communities); err != nil {
		return c, fmt.Errorf("drain: communities: %v", err)
	}
	if drain.Communities == nil {
		c.Drain.Communities = []anycast.Community{d.DrainCommunity}
	}
	if c.Drain.LargeCommunities, err = largeCommunities(drain.LargeCommunities); err != nil {
		return c, fmt.Errorf("drain: large_communities: %v", err)
	}
	c.Drain.Prepend = drain.Prepend
	if drain.MED != nil {
		c.Drain.MED, c.Drain.HasMED = *drain.MED, true
	}
	c.Drain.Wait = d.DrainWait
	if drain.Wait != nil {
		c.Drain.Wait = time.Duration(*drain.Wait)
	}
	return c, c.Validate()
}

func parseListen(vals []string, d anycast.Defaults, c *anycast.Config) error {
	if len(vals) == 0 || (len(vals) == 1 && vals[0] == "off") {
		return nil
	}
	for _, v := range vals {
		if v == "off" {
			return fmt.Errorf("off cannot be combined with addresses")
		}
		host, portText, err := splitHostPort(v)
		if err != nil {
			return err
		}
		port := d.ListenPort
		if portText != "" {
			n, err := strconv.ParseUint(portText, 10, 16)
			if err != nil || n == 0 {
				return fmt.Errorf("%q: bad port", v)
			}
			port = uint16(n)
		}
		if c.ListenPort != 0 && c.ListenPort != port {
			return fmt.Errorf("every listen address must use the same port")
		}
		c.ListenPort = port
		if host != "" {
			a, err := anycast.ParseAddr(host)
			if err != nil {
				return err
			}
			c.ListenAddrs = append(c.ListenAddrs, a)
		}
	}
	return nil
}

// splitHostPort reads "port", "addr", "addr:port" or "[v6]:port".
func splitHostPort(v string) (string, string, error) {
	if _, err := strconv.Atoi(v); err == nil {
		return "", v, nil
	}
	if a, err := netip.ParseAddr(v); err == nil {
		return a.String(), "", nil
	}
	ap, err := netip.ParseAddrPort(v)
	if err != nil {
		return "", "", fmt.Errorf("%q is not off, a port, an address or address:port", v)
	}
	return ap.Addr().String(), strconv.Itoa(int(ap.Port())), nil
}

func corePeer(p *PeerConfig, d anycast.Defaults) (anycast.Peer, error) {
	var out anycast.Peer
	addr, err := anycast.ParseAddr(p.Address)
	if err != nil {
		return out, fmt.Errorf("peer: %v", err)
	}
	name := "peer " + addr.String()
	out.Address = addr
	if strings.TrimSpace(string(p.RemoteAS)) == "" {
		return out, fmt.Errorf("%s: remote_as is required", name)
	}
	if out.RemoteAS, err = anycast.ParseASN(string(p.RemoteAS)); err != nil {
		return out, fmt.Errorf("%s: remote_as: %v", name, err)
	}
	if p.LocalAddress != "" {
		if out.LocalAddress, err = anycast.ParseAddr(p.LocalAddress); err != nil {
			return out, fmt.Errorf("%s: local_address: %v", name, err)
		}
	}
	out.Port = d.Port
	if p.Port != 0 {
		if p.Port < 1 || p.Port > 65535 {
			return out, fmt.Errorf("%s: port %d is not a TCP port", name, p.Port)
		}
		out.Port = uint16(p.Port)
	}
	if p.Multihop < 0 || p.Multihop > 255 {
		return out, fmt.Errorf("%s: multihop must be 1 to 255", name)
	}
	out.Multihop = uint8(p.Multihop)
	// The password is usually a placeholder ({env.BGP_PASSWORD}), resolved
	// here so that the secret never reaches Caddy's saved config. One that
	// resolves to nothing is refused rather than silently running without
	// MD5.
	out.Password = caddy.NewReplacer().ReplaceAll(p.Password, "")
	if p.Password != "" && out.Password == "" {
		return out, fmt.Errorf("%s: password %s is empty (is the variable set?)", name, p.Password)
	}
	if len(out.Password) > 80 {
		return out, fmt.Errorf("%s: password is longer than the 80 bytes TCP MD5 allows", name)
	}
	out.Hold = d.Hold
	if p.Hold != 0 {
		out.Hold = time.Duration(p.Hold)
	}
	out.ConnectRetry = d.ConnectRetry
	if p.ConnectRetry != 0 {
		out.ConnectRetry = time.Duration(p.ConnectRetry)
	}
	for _, f := range p.Families {
		fam, err := anycast.ParseFamily(f)
		if err != nil {
			return out, fmt.Errorf("%s: families: %v", name, err)
		}
		out.Families = append(out.Families, fam)
	}
	if len(out.Families) == 0 {
		out.Families = []anycast.Family{anycast.IPv4}
		if addr.Is6() {
			out.Families = []anycast.Family{anycast.IPv6}
		}
	}
	out.Passive = p.Passive
	return out, nil
}

func coreAnnounce(an *AnnounceConfig, d anycast.Defaults) (anycast.Announce, error) {
	var out anycast.Announce
	if len(an.Prefixes) == 0 {
		return out, fmt.Errorf("announce: at least one prefix is required")
	}
	for _, s := range an.Prefixes {
		p, err := anycast.ParsePrefix(s)
		if err != nil {
			return out, fmt.Errorf("announce: %v", err)
		}
		out.Prefixes = append(out.Prefixes, p)
	}
	name := "announce " + an.Prefixes[0]
	var err error
	out.When = an.When
	out.Min = an.Min
	if an.When != "" && an.Min == 0 {
		out.Min = d.Min
	}
	out.Assign = an.Assign
	if an.NextHop != "" && an.NextHop != "self" {
		if out.NextHop, err = anycast.ParseAddr(an.NextHop); err != nil {
			return out, fmt.Errorf("%s: next_hop: %v", name, err)
		}
	}
	if an.MED != nil {
		out.MED, out.HasMED = *an.MED, true
	}
	if out.Communities, err = communities(an.Communities); err != nil {
		return out, fmt.Errorf("%s: communities: %v", name, err)
	}
	if out.LargeCommunities, err = largeCommunities(an.LargeCommunities); err != nil {
		return out, fmt.Errorf("%s: large_communities: %v", name, err)
	}
	out.Prepend = an.Prepend
	out.Rise, out.Fall = d.Rise, d.Fall
	if an.Rise != 0 {
		out.Rise = an.Rise
	}
	if an.Fall != 0 {
		out.Fall = an.Fall
	}
	out.AnnounceDelay = d.AnnounceDelay
	if an.AnnounceDelay != nil {
		out.AnnounceDelay = time.Duration(*an.AnnounceDelay)
	}
	return out, nil
}

func communities(vals []string) ([]anycast.Community, error) {
	var out []anycast.Community
	for _, v := range vals {
		c, err := anycast.ParseCommunity(v)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

func largeCommunities(vals []string) ([]anycast.LargeCommunity, error) {
	var out []anycast.LargeCommunity
	for _, v := range vals {
		c, err := anycast.ParseLargeCommunity(v)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}
