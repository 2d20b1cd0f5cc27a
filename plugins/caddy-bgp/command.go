package bgp

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/edgeproxy/edgeproxy/anycast"

	"github.com/edgeproxy/edgeproxy/internal/adminclient"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "bgp",
		Usage: "status [--address <admin>] [--json]",
		Short: "Shows the BGP sessions and anycast prefixes of a running edgeProxy POP",
		Long: `
Asks the running Caddy, through its admin API (GET /bgp/), for its BGP
speaker: each peer with its session state, uptime, prefixes sent and
received and last error; each anycast prefix with its state (announced,
draining, withdrawn) and the reason.

--address is the admin endpoint (default localhost:2019, or $CADDY_ADMIN;
unix//path for a socket). --json prints the raw JSON answer.
`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.Flags().String("address", "", "admin API address")
			cmd.Flags().Bool("json", false, "print JSON")
			cmd.Args = cobra.ExactArgs(1)
			cmd.RunE = caddycmd.WrapCommandFuncForCobra(runCommand)
		},
	})
}

func runCommand(fl caddycmd.Flags) (int, error) {
	if sub := fl.Arg(0); sub != "status" {
		return 1, fmt.Errorf("unknown subcommand %q: use status", sub)
	}
	body, err := adminGet(fl.String("address"), "/bgp/")
	if err != nil {
		return 1, err
	}
	if fl.Bool("json") {
		os.Stdout.Write(body)
		return 0, nil
	}
	var st anycast.Status
	if err := json.Unmarshal(body, &st); err != nil {
		return 1, err
	}
	printStatus(os.Stdout, st)
	return 0, nil
}

func adminGet(address, path string) ([]byte, error) { return adminclient.Get(address, path) }

func printStatus(w io.Writer, st anycast.Status) {
	fmt.Fprintf(w, "AS %d, router ID %s, listen %s; POP %s", st.ASN, st.RouterID, st.Listen, st.POP.State)
	if st.POP.Stale {
		fmt.Fprint(w, " (table stale)")
	}
	fmt.Fprintf(w, "\nanycast: %s\n\n", st.Anycast)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PEER\tAS\tSTATE\tUPTIME\tSENT\tRECEIVED\tUPDATES OUT\tLAST ERROR")
	for _, p := range st.Peers {
		up := "-"
		if p.State == "established" {
			up = (time.Duration(p.Uptime) * time.Second).String()
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%d\t%d\t%s\n", p.Address, p.RemoteAS, p.State, up, p.Advertised, p.Received, p.UpdatesSent, p.LastError)
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PREFIX\tSTATE\tFOR\tNEXT HOP\tMED\tCOMMUNITIES\tREASON")
	for _, p := range st.Prefixes {
		med := "-"
		if p.MED != nil {
			med = fmt.Sprint(*p.MED)
		}
		comms := strings.Join(append(append([]string{}, p.Communities...), p.LargeCommunities...), " ")
		if comms == "" {
			comms = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Prefix, p.Phase, (time.Duration(p.SinceSeconds) * time.Second).String(),
			p.NextHop, med, comms, p.Reason)
	}
	tw.Flush()
}
