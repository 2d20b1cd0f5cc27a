package wg6pn

import (
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/edgeproxy/edgeproxy/mesh"
	"github.com/edgeproxy/edgeproxy/sixpn"
)

// Config is the `wg6pn` block: this POP's place in the 6PN mesh.
type Config struct {
	// Network is the deployment's ULA /48, e.g. fdaa:0:1::/48. Required;
	// every POP of a deployment gives the same one.
	Network string `json:"network,omitempty"`
	// Subnet is this POP's /64 inside the network, in hex (2a is
	// fdaa:0:1:2a::/64). Default: derived from the node name by a stable
	// hash and kept unique against the table.
	Subnet string `json:"subnet,omitempty"`
	// ListenPort is the WireGuard UDP port. Default 51820.
	ListenPort int `json:"listen_port,omitempty"`
	// Endpoint is the host:port other POPs dial, published in this POP's
	// pops row. Without it other POPs wait to be dialled by this one.
	Endpoint string `json:"endpoint,omitempty"`
	// Interface is the WireGuard link's name. Default wg6pn0.
	Interface string `json:"interface,omitempty"`
	// MTU of the link. Default 1420.
	MTU int `json:"mtu,omitempty"`
	// Keepalive is the persistent keepalive of every peer; negative is
	// off. Default 25s.
	Keepalive caddy.Duration `json:"keepalive,omitempty"`
	// PrivateKeyFile holds the private key (base64, as `wg genkey`
	// writes), mode 0600. Created on first start. Default:
	// wg6pn/private.key in Caddy's data directory.
	PrivateKeyFile string `json:"private_key_file,omitempty"`
	// Routes are extra prefixes behind this POP (v1's 10.50.x.x IPv4
	// backends), published with its /64 and allowed on its peer entry at
	// every other POP.
	Routes []string `json:"routes,omitempty"`
	// Mode picks the device: auto (the kernel's when it has WireGuard,
	// else the embedded userspace device), kernel or userspace.
	Mode string `json:"mode,omitempty"`
}

// DefaultConfig holds every default of the block.
func DefaultConfig() Config {
	return Config{
		ListenPort:     51820,
		Interface:      "wg6pn0",
		MTU:            1420,
		Keepalive:      caddy.Duration(25 * time.Second),
		PrivateKeyFile: filepath.Join(caddy.AppDataDir(), "wg6pn", "private.key"),
		Mode:           mesh.ModeAuto,
	}
}

// settings is a validated Config.
type settings struct {
	plan      sixpn.Plan
	subnet    uint16
	explicit  bool
	routes    []netip.Prefix
	keepalive time.Duration
}

// withDefaults fills what the config leaves out.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.ListenPort == 0 {
		c.ListenPort = d.ListenPort
	}
	if c.Interface == "" {
		c.Interface = d.Interface
	}
	if c.MTU == 0 {
		c.MTU = d.MTU
	}
	if c.Keepalive == 0 {
		c.Keepalive = d.Keepalive
	}
	if c.PrivateKeyFile == "" {
		c.PrivateKeyFile = d.PrivateKeyFile
	}
	if c.Mode == "" {
		c.Mode = d.Mode
	}
	return c
}

// validate checks every option, each error naming it.
func (c Config) validate() (settings, error) {
	var s settings
	if strings.TrimSpace(c.Network) == "" {
		return s, fmt.Errorf("wg6pn: network is required (the deployment's ULA /48, e.g. fdaa:0:1::/48)")
	}
	plan, err := sixpn.ParseNetwork(c.Network)
	if err != nil {
		return s, fmt.Errorf("wg6pn: %v", err)
	}
	s.plan = plan
	if c.Subnet != "" {
		if s.subnet, err = sixpn.ParseSubnet(c.Subnet); err != nil {
			return s, fmt.Errorf("wg6pn: %v", err)
		}
		s.explicit = true
	}
	if c.ListenPort < 1 || c.ListenPort > 65535 {
		return s, fmt.Errorf("wg6pn: listen_port %d is not a UDP port", c.ListenPort)
	}
	if c.Endpoint != "" {
		host, port, err := net.SplitHostPort(c.Endpoint)
		if err != nil || host == "" {
			return s, fmt.Errorf("wg6pn: endpoint %q is not host:port", c.Endpoint)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return s, fmt.Errorf("wg6pn: endpoint %q: bad port", c.Endpoint)
		}
	}
	if len(c.Interface) > 15 || strings.ContainsAny(c.Interface, "/ \t") {
		return s, fmt.Errorf("wg6pn: interface %q is not a valid link name (at most 15 characters, no '/' or spaces)", c.Interface)
	}
	if c.MTU < 1280 || c.MTU > 65535 {
		return s, fmt.Errorf("wg6pn: mtu %d: IPv6 needs at least 1280", c.MTU)
	}
	if c.Keepalive > 0 {
		s.keepalive = time.Duration(c.Keepalive)
		if s.keepalive < time.Second || s.keepalive > 65535*time.Second {
			return s, fmt.Errorf("wg6pn: keepalive %s: between 1s and 65535s, or off", s.keepalive)
		}
	}
	for _, r := range c.Routes {
		p, err := netip.ParsePrefix(r)
		if err != nil {
			return s, fmt.Errorf("wg6pn: routes: %q is not a prefix", r)
		}
		if p.Masked() != p {
			return s, fmt.Errorf("wg6pn: routes: %q has host bits set (did you mean %s?)", r, p.Masked())
		}
		if p.Addr().Is6() && plan.Network.Overlaps(p) {
			return s, fmt.Errorf("wg6pn: routes: %s lies inside the network %s, whose /64s are the POPs'", p, plan.Network)
		}
		s.routes = append(s.routes, p)
	}
	switch c.Mode {
	case mesh.ModeAuto, mesh.ModeKernel, mesh.ModeUserspace:
	default:
		return s, fmt.Errorf("wg6pn: mode %q: want auto, kernel or userspace", c.Mode)
	}
	return s, nil
}
