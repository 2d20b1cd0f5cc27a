package edgeroute

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/edgeproxy/edgeproxy/discovery"
)

// registerFlags adds the flags of `caddy edgeroute register`.
func registerFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.String("api", "", "register: base URL of the edgeroute_api site, e.g. https://api.pop1.example.net")
	f.String("token", "", "register: API token (default $EDGE_API_TOKEN)")
	f.String("id", "", "register: backend id")
	f.String("region", "", "register: backend region (sa, us, eu, ap, ...)")
	f.String("country", "", "register: backend country (default: from GeoIP, then the region)")
	f.String("ip", "", "register: backend IP address")
	f.Int("port", 0, "register: backend port")
	f.Int("weight", 0, "register: weight (default 2)")
	f.Int("soft-limit", 0, "register: soft connection limit (default 100)")
	f.Int("hard-limit", 0, "register: hard connection limit (default 150)")
	f.Duration("ttl", 60*time.Second, "register: the API's heartbeat_ttl; heartbeats go every ttl/3")
}

const registerUsage = `
  caddy edgeroute register --api URL [--token T] --id ID --app APP --region R --ip IP --port P
        [--country CC] [--weight N] [--soft-limit N] [--hard-limit N] [--ttl 60s]
      registers this backend with an edgeroute_api site, heartbeats every
      ttl/3 (registering again if the POP forgot it), and deregisters on
      SIGINT or SIGTERM. The token may come from $EDGE_API_TOKEN instead of
      --token, which keeps it out of the process list.`

func runRegister(fl caddycmd.Flags) (int, error) {
	base := strings.TrimSuffix(fl.String("api"), "/")
	token := fl.String("token")
	if token == "" {
		token = os.Getenv("EDGE_API_TOKEN")
	}
	id, app, region, ip, port := fl.String("id"), fl.String("app"), fl.String("region"), fl.String("ip"), fl.Int("port")
	var missing []string
	for name, v := range map[string]string{"--api": base, "--token (or $EDGE_API_TOKEN)": token, "--id": id, "--app": app, "--region": region, "--ip": ip} {
		if v == "" {
			missing = append(missing, name)
		}
	}
	if port == 0 {
		missing = append(missing, "--port")
	}
	if len(missing) > 0 {
		return exitFailure, fmt.Errorf("register needs %s", strings.Join(missing, ", "))
	}
	if u, err := url.Parse(base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return exitFailure, fmt.Errorf("--api %q: must be an http:// or https:// URL", base)
	}
	ttl := fl.Duration("ttl")
	if ttl <= 0 {
		return exitFailure, fmt.Errorf("--ttl must be positive")
	}
	reg := discovery.Registration{ID: id, App: app, Region: region, Country: fl.String("country"), IP: ip, Port: port,
		Weight: fl.Int("weight"), SoftLimit: fl.Int("soft-limit"), HardLimit: fl.Int("hard-limit")}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c := &discovery.Client{Base: base, Token: token, Logf: func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "%s edgeroute register: %s\n", time.Now().Format(time.RFC3339), fmt.Sprintf(format, args...))
	}}
	if err := c.Run(ctx, reg, ttl); err != nil {
		return exitFailure, err
	}
	return 0, nil
}
