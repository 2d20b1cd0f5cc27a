// Command caddy is Caddy with the layer4 app and edgeProxy's modules.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"
	_ "github.com/mholt/caddy-l4"

	_ "github.com/edgeproxy/edgeproxy/plugins/caddy-bgp"
	_ "github.com/edgeproxy/edgeproxy/plugins/caddy-edgeroute"
	_ "github.com/edgeproxy/edgeproxy/plugins/caddy-wg6pn"
)

func main() {
	caddycmd.Main()
}
