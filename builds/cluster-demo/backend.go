//go:build linux

package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
)

// runBackend is the demo backend, run by the demo inside a backend's
// namespace: an HTTP server that says which backend answered and which
// POP the connection came through, read from its source address (a POP's
// 6PN /64 names the POP).
func runBackend(args []string) {
	fs := flag.NewFlagSet("backend", flag.ExitOnError)
	listen := fs.String("listen", "", "address to serve on")
	id := fs.String("id", "", "backend id")
	region := fs.String("region", "", "backend region")
	fs.Parse(args)
	plan := map[string]string{} // 6PN subnet -> POP
	for _, p := range pops {
		plan[p.subnet] = p.name
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	log.Fatal(http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		via := "unknown"
		if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
			via = popOf(ap.Addr(), plan)
		}
		w.Header().Set("X-Backend", *id)
		w.Header().Set("X-Pop", via)
		fmt.Fprintf(w, "hello from %s (%s), through POP %s\n", *id, *region, via)
	})))
}

// popOf names the POP whose /64 of fdaa:0:1::/48 holds addr.
func popOf(addr netip.Addr, plan map[string]string) string {
	if !netip.MustParsePrefix(network6).Contains(addr) {
		return addr.String()
	}
	b := addr.As16()
	subnet := strings.TrimLeft(fmt.Sprintf("%x", uint16(b[6])<<8|uint16(b[7])), "0")
	if name, ok := plan[subnet]; ok {
		return name
	}
	return addr.String()
}

func init() {
	if len(os.Args) > 1 && os.Args[1] == "backend" {
		runBackend(os.Args[2:])
		os.Exit(0)
	}
}
