package internal

import (
	"context"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/edgeproxy/edgeproxy/geo"
	"github.com/edgeproxy/edgeproxy/routing"
	"github.com/edgeproxy/edgeproxy/store"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/pkg/fall"
	clog "github.com/coredns/coredns/plugin/pkg/log"
)

const pluginName = "internal"

var log = clog.NewWithPlugin(pluginName)

func init() { plugin.Register(pluginName, setup) }

// defaultTTL is short: answers follow health changes, and resolvers caching
// them longer would keep sending clients to a backend that went down.
const defaultTTL = 5

// config is the parsed Corefile block.
type config struct {
	zones  []string
	db     string
	geoip  string // "" for the embedded database
	ttl    uint32
	region string // the POP's own region, for scoring; "" when unknown
	fall   fall.F
	ns     []netip.Addr // addresses of ns.dns.<zone>; empty: the POPs' 6PN addresses
}

func setup(c *caddy.Controller) error {
	cfg, err := parse(c)
	if err != nil {
		return plugin.Error(pluginName, err)
	}
	// Open the table and load it now, so a wrong path or a file that is not
	// a routing table stops the server at startup with the file named.
	in, err := newInternal(context.Background(), cfg)
	if err != nil {
		return plugin.Error(pluginName, err)
	}
	c.OnStartup(in.start)
	c.OnShutdown(in.stop)

	dnsserver.GetConfig(c).AddPlugin(func(next plugin.Handler) plugin.Handler {
		in.Next = next
		return in
	})
	return nil
}

func parse(c *caddy.Controller) (config, error) {
	cfg := config{ttl: defaultTTL}
	root := dnsserver.GetConfig(c).Root
	i := 0
	for c.Next() {
		if i > 0 {
			return cfg, plugin.ErrOnce
		}
		i++
		cfg.zones = plugin.OriginsFromArgsOrServerBlock(c.RemainingArgs(), c.ServerBlockKeys)
		for c.NextBlock() {
			switch c.Val() {
			case "db":
				path, err := oneArg(c)
				if err != nil {
					return cfg, err
				}
				cfg.db = rooted(root, path)
			case "geoip":
				path, err := oneArg(c)
				if err != nil {
					return cfg, err
				}
				cfg.geoip = rooted(root, path)
			case "ttl":
				v, err := oneArg(c)
				if err != nil {
					return cfg, err
				}
				ttl, err := strconv.Atoi(v)
				if err != nil || ttl < 0 || ttl > 3600 {
					return cfg, c.Errf("ttl must be a number of seconds in [0, 3600], not %q", v)
				}
				cfg.ttl = uint32(ttl)
			case "region":
				v, err := oneArg(c)
				if err != nil {
					return cfg, err
				}
				cfg.region = strings.ToLower(v)
			case "ns":
				args := c.RemainingArgs()
				if len(args) == 0 || len(cfg.ns) > 0 {
					return cfg, c.Err("ns takes one or more IP addresses, once")
				}
				for _, a := range args {
					ip, err := netip.ParseAddr(a)
					if err != nil || ip.Zone() != "" {
						return cfg, c.Errf("ns: %q is not an IP address", a)
					}
					cfg.ns = append(cfg.ns, ip.Unmap())
				}
			case "fallthrough":
				cfg.fall.SetZonesFromArgs(c.RemainingArgs())
			default:
				return cfg, c.Errf("unknown property %q", c.Val())
			}
		}
	}
	if cfg.db == "" {
		return cfg, c.Err("db is required: the path of edgeProxy's routing table (routing.db)")
	}
	return cfg, nil
}

func oneArg(c *caddy.Controller) (string, error) {
	prop := c.Val()
	args := c.RemainingArgs()
	if len(args) != 1 {
		return "", c.Errf("%s takes exactly one argument", prop)
	}
	return args[0], nil
}

// rooted resolves a relative path against the root plugin's directory, as
// the hosts and file plugins do.
func rooted(root, path string) string {
	if root != "" && !filepath.IsAbs(path) {
		return filepath.Join(root, path)
	}
	return path
}

// newInternal opens the GeoIP database and the routing table and loads the
// first snapshot. It does not start watching; start does.
func newInternal(ctx context.Context, cfg config) (*Internal, error) {
	in := &Internal{
		Zones:   cfg.zones,
		Fall:    cfg.fall,
		regions: routing.DefaultRegions(),
		db:      cfg.db,
		warned:  map[string]bool{},
	}
	in.build = buildConfig{
		zones:   cfg.zones,
		ttl:     cfg.ttl,
		scorer:  routing.Scorer{LocalRegion: cfg.region},
		regions: in.regions,
		nsAddrs: cfg.ns,
	}
	in.build.published = &in.snap
	g, err := geo.Open(cfg.geoip)
	if err != nil {
		return nil, err
	}
	in.geo = g
	st, err := store.Open(ctx, cfg.db, store.Options{ReadOnly: true, ListOnly: true})
	if err != nil {
		g.Close()
		return nil, err
	}
	in.store = st
	t, warnings, err := st.Snapshot(ctx)
	if err == nil {
		err = in.load(ctx, t, warnings)
	}
	if err != nil {
		st.Close()
		g.Close()
		return nil, err
	}
	register(in)
	s := in.snap.Load()
	log.Infof("serving %s from %s (serial %d, GeoIP: %s)", strings.Join(cfg.zones, " "), st.Path(), s.serial, g.Source())
	return in, nil
}
