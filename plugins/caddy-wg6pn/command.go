package wg6pn

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/edgeproxy/edgeproxy/internal/adminclient"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "wg6pn",
		Usage: "status|rotate [--address <admin>] [--json]",
		Short: "Shows or rotates this POP's 6PN WireGuard mesh",
		Long: `
Asks the running Caddy, through its admin API, about the 6PN mesh.

  caddy wg6pn status
      this POP's public key, prefix, address and endpoint, and every peer
      (another POP) with its endpoint, allowed IPs, last handshake and bytes.

  caddy wg6pn rotate
      makes a new private key, saves it to the key file, puts it on the
      device and publishes the public key in this POP's row; the other
      POPs take it when the row reaches them.

--address is the admin endpoint (default localhost:2019, or $CADDY_ADMIN).
--json prints the raw JSON answer.
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
	var method, path string
	switch sub := fl.Arg(0); sub {
	case "status":
		method, path = http.MethodGet, "/wg6pn/"
	case "rotate":
		method, path = http.MethodPost, "/wg6pn/rotate"
	default:
		return 1, fmt.Errorf("unknown subcommand %q: use status or rotate", sub)
	}
	body, err := adminDo(method, fl.String("address"), path)
	if err != nil {
		return 1, err
	}
	if fl.Bool("json") || method == http.MethodPost {
		os.Stdout.Write(body)
		return 0, nil
	}
	var v View
	if err := json.Unmarshal(body, &v); err != nil {
		return 1, err
	}
	printView(os.Stdout, v)
	return 0, nil
}

func adminDo(method, address, path string) ([]byte, error) {
	return adminclient.Do(method, address, path, nil)
}

func printView(w io.Writer, v View) {
	fmt.Fprintf(w, "node %s  interface %s (%s)  mtu %d\n", v.Node, v.Interface, v.Mode, v.MTU)
	fmt.Fprintf(w, "public key %s\nprefix %s  address %s  network %s\n", v.PublicKey, v.Prefix, v.Address, v.Network)
	fmt.Fprintf(w, "endpoint %s  listen port %d\n", orDash(v.Endpoint), v.ListenPort)
	if len(v.Routes) > 0 {
		fmt.Fprintf(w, "routes %s\n", strings.Join(v.Routes, " "))
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PEER\tENDPOINT\tALLOWED IPS\tHANDSHAKE\tRX\tTX")
	for _, p := range v.Peers {
		hs := "never"
		if !p.LastHandshake.IsZero() {
			hs = fmt.Sprintf("%.0fs ago", p.SecondsSinceHandshake)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\n", orDash(p.Node), orDash(p.Endpoint), strings.Join(p.AllowedIPs, ","), hs, p.RxBytes, p.TxBytes)
	}
	tw.Flush()
	for _, r := range v.Refused {
		fmt.Fprintf(w, "refused: %s\n", r)
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
