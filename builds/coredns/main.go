// Command coredns is CoreDNS with edgeProxy's internal plugin and the stock
// plugins a POP needs. It is built from coremain with an explicit plugin
// list instead of CoreDNS's core/plugin, which would link every cloud SDK.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/any"
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/hosts"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/metrics"
	_ "github.com/coredns/coredns/plugin/pprof"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
	_ "github.com/coredns/coredns/plugin/transfer"

	_ "github.com/edgeproxy/edgeproxy/plugins/coredns-internal"
)

// directives is the order in which a query meets the plugins, whatever the
// order in the Corefile. The stock plugins keep their place from CoreDNS's
// plugin.cfg. internal sits where plugin.cfg puts the other data sources
// (dynupdate, hosts): after cache, so a cache placed in a server block that
// also holds internal sees its answers (the README says to keep the zone out
// of cache: answers depend on the client), after transfer, so AXFR reaches
// the transfer plugin first, and before hosts and forward, which it falls
// through to when configured with fallthrough.
var directives = []string{
	"reload",
	"bind",
	"ready",
	"health",
	"pprof",
	"prometheus",
	"errors",
	"log",
	"any",
	"cache",
	"transfer",
	"internal",
	"hosts",
	"forward",
}

func main() {
	dnsserver.SetDirectives(directives)
	coremain.Run()
}
