// Package anycast announces a POP's anycast prefixes over BGP while the POP
// can serve them, and drains (RFC 8326) and withdraws them when it cannot.
//
// It embeds one GoBGP speaker per process: GoBGP's server loop never
// returns, and a host program that reloads its configuration (Caddy starts
// the new configuration before it stops the old one) must not reset BGP
// sessions on every reload. A new Config is therefore applied to the one
// Manager as a difference: peers added, removed or changed, prefixes
// announced or withdrawn, and nothing else touched.
//
// The package is free of Caddy: it follows the POP's health signal
// (pop.Signal) and is driven by the Caddy app `bgp`.
package anycast

import (
	"fmt"
	"net/netip"
	"time"
)

// Family is an address family a session carries.
type Family string

// The unicast families a POP announces.
const (
	IPv4 Family = "ipv4"
	IPv6 Family = "ipv6"
)

// Config is the whole BGP configuration of one POP.
type Config struct {
	ASN      uint32
	RouterID netip.Addr
	// ListenPort is the TCP port passive sessions are accepted on; 0 is
	// `listen off`: the POP only dials its peers.
	ListenPort uint16
	// ListenAddrs restricts where the listener binds; empty: every address.
	ListenAddrs []netip.Addr
	Peers       []Peer
	Announces   []Announce
	Drain       Drain
}

// Peer is one BGP neighbour.
type Peer struct {
	Address  netip.Addr
	RemoteAS uint32
	// LocalAddress is the source of the session; zero: chosen by the kernel.
	LocalAddress netip.Addr
	// Port is the peer's TCP port (179).
	Port uint16
	// Multihop is the TTL of an eBGP multihop session; 0: directly
	// connected (TTL 1).
	Multihop uint8
	// Password turns on TCP MD5 signatures (RFC 2385). Never logged.
	Password string
	// Hold is the hold time offered; keepalives go every Hold/3.
	Hold time.Duration
	// ConnectRetry is how long the POP waits between two attempts to dial.
	ConnectRetry time.Duration
	// Families are the address families the session carries, configured
	// explicitly (GoBGP would otherwise enable only the neighbour's own).
	Families []Family
	// Passive waits for the peer to connect.
	Passive bool
}

// Announce is a group of prefixes announced under one condition with the
// same attributes.
type Announce struct {
	Prefixes []netip.Prefix
	// When names the app whose routable backends the announcement follows;
	// empty: announced while the POP serves.
	When string
	// Min is the least routable backends of When for the prefixes to be
	// announced.
	Min int
	// NextHop is the next hop announced; zero: self, the session's local
	// address.
	NextHop netip.Addr
	// MED is the MULTI_EXIT_DISC sent when HasMED.
	MED    uint32
	HasMED bool
	// Communities and LargeCommunities are attached to every prefix.
	Communities      []Community
	LargeCommunities []LargeCommunity
	// Prepend adds the POP's own AS this many extra times to the AS path.
	Prepend int
	// Rise is how many consecutive observations of the condition holding
	// announce the prefixes; Fall how many of it failing withdraw them.
	Rise, Fall int
	// AnnounceDelay holds the first announcement after the prefixes are
	// first configured in this process: listeners are up and the table
	// loaded before traffic is attracted.
	AnnounceDelay time.Duration
	// Assign names the interface the addresses are put on while the
	// speaker runs; empty: none.
	Assign string
}

// Drain is how prefixes leave when the POP drains or stops: re-announced
// with these attributes for Wait (RFC 8326 graceful shutdown), then
// withdrawn.
type Drain struct {
	Communities      []Community
	LargeCommunities []LargeCommunity
	Prepend          int
	MED              uint32
	HasMED           bool
	Wait             time.Duration
}

// Defaults of the package, in one place.
type Defaults struct {
	Port           uint16        // a peer's TCP port
	ListenPort     uint16        // the port `listen` uses when given only addresses
	Hold           time.Duration // hold time offered to a peer
	ConnectRetry   time.Duration // between two dials of a peer
	Min            int           // routable backends for `when <app>`
	Rise, Fall     int           // hysteresis of the condition
	AnnounceDelay  time.Duration // before the first announcement
	DrainWait      time.Duration // announced with GRACEFUL_SHUTDOWN before the withdraw
	DrainCommunity Community     // attached while draining
	// Observe is how often the condition is observed while the signal is
	// unchanged (every change of the signal is an observation too).
	Observe time.Duration
	// StopGrace is added to the drain wait when the process stops and
	// waits for the withdrawals.
	StopGrace time.Duration
}

// DefaultConfig returns every default of the package.
func DefaultConfig() Defaults {
	return Defaults{
		Port:           179,
		ListenPort:     179,
		Hold:           90 * time.Second,
		ConnectRetry:   5 * time.Second,
		Min:            1,
		Rise:           2,
		Fall:           1,
		AnnounceDelay:  2 * time.Second,
		DrainWait:      10 * time.Second,
		DrainCommunity: GracefulShutdown,
		Observe:        time.Second,
		StopGrace:      2 * time.Second,
	}
}

// Validate checks a config that its parser already filled with defaults,
// naming the option at fault.
func (c *Config) Validate() error {
	if _, err := asn32(c.ASN); err != nil {
		return fmt.Errorf("asn: %v", err)
	}
	if !c.RouterID.Is4() || c.RouterID.IsUnspecified() {
		return fmt.Errorf("router_id: an IPv4 address other than 0.0.0.0 is required")
	}
	seen := map[netip.Addr]bool{}
	for _, p := range c.Peers {
		name := "peer " + p.Address.String()
		if !p.Address.IsValid() {
			return fmt.Errorf("peer: an address is required")
		}
		if seen[p.Address] {
			return fmt.Errorf("%s: configured twice", name)
		}
		seen[p.Address] = true
		if p.RemoteAS == 0 {
			return fmt.Errorf("%s: remote_as is required", name)
		}
		if _, err := asn32(p.RemoteAS); err != nil {
			return fmt.Errorf("%s: remote_as: %v", name, err)
		}
		if p.LocalAddress.IsValid() && p.LocalAddress.Is4() != p.Address.Is4() {
			return fmt.Errorf("%s: local_address %s is not of the peer's family", name, p.LocalAddress)
		}
		if p.Passive && c.ListenPort == 0 {
			return fmt.Errorf("%s: passive needs a listener, but listen is off", name)
		}
		if p.Hold != 0 && (p.Hold < 3*time.Second || p.Hold > 65535*time.Second || p.Hold%time.Second != 0) {
			return fmt.Errorf("%s: hold must be whole seconds from 3s to 65535s", name)
		}
		if p.ConnectRetry < time.Second || p.ConnectRetry%time.Second != 0 {
			return fmt.Errorf("%s: connect_retry must be whole seconds, at least 1s", name)
		}
		if len(p.Families) == 0 {
			return fmt.Errorf("%s: families: at least one family is required", name)
		}
		if p.Multihop > 0 && p.RemoteAS == c.ASN {
			return fmt.Errorf("%s: multihop is for eBGP peers; an iBGP session is not TTL-limited", name)
		}
	}
	prefixes := map[netip.Prefix]bool{}
	for _, a := range c.Announces {
		if len(a.Prefixes) == 0 {
			return fmt.Errorf("announce: at least one prefix is required")
		}
		name := "announce " + a.Prefixes[0].String()
		for _, p := range a.Prefixes {
			m := p.Masked()
			if prefixes[m] {
				return fmt.Errorf("announce %s: announced twice", m)
			}
			prefixes[m] = true
			if a.NextHop.IsValid() {
				continue
			}
			// next_hop self is the session's local address, which is of
			// the session's family: a prefix of the other family needs an
			// explicit next hop.
			for _, peer := range c.Peers {
				if peer.Address.Is4() != p.Addr().Is4() && hasFamily(peer.Families, familyOf(p.Addr())) {
					return fmt.Errorf("announce %s: next_hop self cannot be sent over the %s session to %s; set next_hop to an %s address",
						p, familyOf(peer.Address), peer.Address, familyOf(p.Addr()))
				}
			}
		}
		if a.NextHop.IsValid() {
			for _, p := range a.Prefixes {
				if p.Addr().Is4() != a.NextHop.Is4() {
					return fmt.Errorf("%s: next_hop %s is not of the family of %s", name, a.NextHop, p)
				}
			}
		}
		if a.When == "" && a.Min != 0 {
			return fmt.Errorf("%s: min needs when <app>", name)
		}
		if a.When != "" && a.Min < 1 {
			return fmt.Errorf("%s: when %s min must be at least 1", name, a.When)
		}
		if a.Rise < 1 || a.Fall < 1 {
			return fmt.Errorf("%s: rise and fall must be at least 1", name)
		}
		if a.Prepend < 0 || a.Prepend > 32 {
			return fmt.Errorf("%s: prepend must be 0 to 32", name)
		}
		if a.AnnounceDelay < 0 {
			return fmt.Errorf("%s: announce_delay must not be negative", name)
		}
	}
	if c.Drain.Prepend < 0 || c.Drain.Prepend > 32 {
		return fmt.Errorf("drain: prepend must be 0 to 32")
	}
	if c.Drain.Wait < 0 {
		return fmt.Errorf("drain: wait must not be negative")
	}
	return nil
}

func familyOf(a netip.Addr) Family {
	if a.Is4() {
		return IPv4
	}
	return IPv6
}

func hasFamily(fs []Family, f Family) bool {
	for _, x := range fs {
		if x == f {
			return true
		}
	}
	return false
}

// Apps lists the apps the config's conditions name.
func (c *Config) Apps() []string {
	var apps []string
	seen := map[string]bool{}
	for _, a := range c.Announces {
		if a.When != "" && !seen[a.When] {
			seen[a.When] = true
			apps = append(apps, a.When)
		}
	}
	return apps
}
