package edgeroute

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"slices"
	"text/tabwriter"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/edgeproxy/edgeproxy/internal/adminclient"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "edgeroute",
		Usage: "route|backends|pop|drain|undrain|register [--app <app>] [--client <ip>] [--limit <n>] [--after <id>] [--reason <text>] [--address <admin>]",
		Short: "Asks a running edgeProxy POP how it routes",
		Long: `
Asks the running Caddy, through its admin API, how it routes.

  caddy edgeroute route --app myapp --client 203.0.113.7
      explains the decision for a client: every candidate backend, its geo
      tier, load, weight and score, and why it won or was skipped.

  caddy edgeroute backends [--app myapp] [--limit 1000 [--after <id>]]
      lists the routing table as routing sees it, with live connection counts;
      with --limit, that many backends in ID order, from the first ID after
      --after, and the --after of the next page.

  caddy edgeroute pop [--app myapp[,other]]
      shows the POP's health signal: serving, draining or stopping, whether
      the table is stale, and each app's routable backends, with reasons.

  caddy edgeroute drain [--reason "kernel upgrade"]
  caddy edgeroute undrain
      drains the POP (anycast announcements are drained, then withdrawn;
      listeners keep serving) and ends the drain. A drain lasts until
      undrain or a restart; for one that survives restarts use drain_file.

--address is the admin endpoint (default localhost:2019, or $CADDY_ADMIN).
--json prints the raw JSON answer.
` + registerUsage,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.Flags().String("app", "", "app name")
			cmd.Flags().String("client", "", "client IP address")
			cmd.Flags().String("address", "", "admin API address")
			cmd.Flags().Bool("json", false, "print JSON")
			cmd.Flags().String("reason", "", "why the POP is drained (drain)")
			cmd.Flags().Int("limit", 0, "backends per page, in ID order (backends)")
			cmd.Flags().String("after", "", "list the backends whose ID sorts after this one (backends)")
			registerFlags(cmd) // register_command.go
			cmd.Args = cobra.ExactArgs(1)
			cmd.RunE = caddycmd.WrapCommandFuncForCobra(runCommand)
		},
	})
}

func runCommand(fl caddycmd.Flags) (int, error) {
	sub := fl.Arg(0)
	app, client := fl.String("app"), fl.String("client")
	var path string
	switch sub {
	case "register":
		return runRegister(fl) // register_command.go
	case "pop", "drain", "undrain":
		return runPop(fl, sub)
	case "route":
		if app == "" || client == "" {
			return exitFailure, fmt.Errorf("route needs --app and --client")
		}
		path = "/edgeroute/route?" + url.Values{"app": {app}, "client": {client}}.Encode()
	case "backends":
		path = "/edgeroute/backends"
		q := url.Values{}
		if app != "" {
			q.Set("app", app)
		}
		if n := fl.Int("limit"); n != 0 {
			q.Set("limit", fmt.Sprint(n))
		}
		if after := fl.String("after"); after != "" {
			q.Set("after", after)
		}
		if len(q) > 0 {
			path += "?" + q.Encode()
		}
	default:
		return exitFailure, fmt.Errorf("unknown subcommand %q: use route, backends, pop, drain, undrain or register", sub)
	}
	body, err := adminGet(fl.String("address"), path)
	if err != nil {
		return exitFailure, err
	}
	if fl.Bool("json") {
		os.Stdout.Write(body)
		return 0, nil
	}
	if sub == "route" {
		var v RouteView
		if err := json.Unmarshal(body, &v); err != nil {
			return exitFailure, err
		}
		printRoute(os.Stdout, v)
	} else {
		var v TableView
		if err := json.Unmarshal(body, &v); err != nil {
			return exitFailure, err
		}
		printTable(os.Stdout, v)
	}
	return 0, nil
}

const exitFailure = 1

func adminGet(address, path string) ([]byte, error) { return adminclient.Get(address, path) }

func adminDo(method, address, path string, payload []byte) ([]byte, error) {
	return adminclient.Do(method, address, path, payload)
}

func printRoute(w io.Writer, v RouteView) {
	country := v.ClientCountry
	if country == "" {
		country = "unknown"
	}
	fmt.Fprintf(w, "app %s, client %s (country %s, region %s), POP region %s\n", v.App, v.Client, country, orDash(v.ClientRegion), orDash(v.PopRegion))
	if v.AffinityTo != "" {
		fmt.Fprintf(w, "client is bound to %s by affinity while it stays eligible\n", v.AffinityTo)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "BACKEND\tADDR\tREGION\tCOUNTRY\tGEO\tACTIVE\tLOAD\tWEIGHT\tSCORE\tDECISION")
	for _, c := range v.Candidates {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d %s\t%d\t%.3f\t%g\t%.3f\t%s\n", c.ID, c.Addr, orDash(c.Region), orDash(c.Country),
			c.TierRank, c.Tier, c.Active, c.Load, c.Weight, c.Score, c.Reason)
	}
	tw.Flush()
	if v.Chosen == "" {
		fmt.Fprintln(w, "no eligible backend: a connection would be refused")
	}
}

func printTable(w io.Writer, v TableView) {
	fmt.Fprintf(w, "node %s, region %s, db %s, generation %d\n", v.Node, orDash(v.Region), v.DB, v.Generation)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "BACKEND\tAPP\tADDR\tREGION\tCOUNTRY\tROUTABLE\tWEIGHT\tSOFT\tHARD\tACTIVE\tTOTAL")
	for _, b := range v.Backends {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%v\t%d\t%d\t%d\t%d\t%d\n", b.ID, b.App, b.Addr, orDash(b.Region), orDash(b.Country),
			b.Routable, b.Weight, b.SoftLimit, b.HardLimit, b.Active, b.Total)
	}
	tw.Flush()
	if v.Next != "" {
		fmt.Fprintf(w, "more: --after %s\n", v.Next)
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// runPop shows, drains or undrains the POP.
func runPop(fl caddycmd.Flags, sub string) (int, error) {
	var (
		body []byte
		err  error
	)
	switch sub {
	case "pop":
		path := "/edgeroute/pop"
		if app := fl.String("app"); app != "" {
			path += "?" + url.Values{"app": {app}}.Encode()
		}
		body, err = adminGet(fl.String("address"), path)
	case "drain":
		payload, _ := json.Marshal(drainRequest{Reason: fl.String("reason")})
		body, err = adminDo(http.MethodPost, fl.String("address"), "/edgeroute/drain", payload)
	default:
		body, err = adminDo(http.MethodPost, fl.String("address"), "/edgeroute/undrain", []byte{})
	}
	if err != nil {
		return exitFailure, err
	}
	if fl.Bool("json") {
		os.Stdout.Write(body)
		return 0, nil
	}
	var v PopView
	if err := json.Unmarshal(body, &v); err != nil {
		return exitFailure, err
	}
	printPop(os.Stdout, v)
	return 0, nil
}

func printPop(w io.Writer, v PopView) {
	fmt.Fprintf(w, "node %s, region %s: %s (%s)\n", v.Node, orDash(v.Region), v.State, orDash(v.StateReason))
	if v.Stale {
		fmt.Fprintf(w, "table stale: %s\n", v.StaleReason)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "APP\tROUTABLE\tBACKENDS\tWHY")
	for _, app := range slices.Sorted(maps.Keys(v.Apps)) {
		a := v.Apps[app]
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", app, a.Routable, a.Backends, orDash(a.Reason))
	}
	tw.Flush()
}
