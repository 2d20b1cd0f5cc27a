package main

import (
	"fmt"
	"hash/crc32"
)

// The demo's network. Every address is a documentation or ULA address; no
// namespace has a default route or a link to the host's network.
//
//	edge-client 203.0.113.2 ── 203.0.113.1 edge-inet (BIRD, AS 65000)
//	                                       198.51.100.1 on the POPs' segment
//	edge-gru 198.51.100.11 (AS 65101) ─┐
//	edge-iad 198.51.100.12 (AS 65102) ─┼─ segment 198.51.100.0/24 (bridge in edge-inet)
//	edge-fra 198.51.100.13 (AS 65103) ─┘
//	edge-be-iad fdaa:0:1:2::10 ── fdaa:0:1:2::fe edge-iad   (iad's 6PN /64)
//	edge-be-fra fdaa:0:1:3::10 ── fdaa:0:1:3::fe edge-fra   (fra's 6PN /64)
//
// Every POP announces 192.0.2.1/32 to BIRD, which installs the route it
// prefers; the client reaches the anycast address through it.
const (
	anycast    = "192.0.2.1"
	routerIP   = "198.51.100.1"
	clientIP   = "203.0.113.2"
	clientGW   = "203.0.113.1"
	network6   = "fdaa:0:1::/48"
	routerASN  = 65000
	apiPort    = 8081
	statusPort = 8080
	// statusUser and statusPassword guard the status page (basic_auth).
	statusUser     = "admin"
	statusPassword = "edge"
	// heartbeatTTL of the registrations: a backend whose POP died is
	// removed everywhere after about two of them.
	heartbeatTTL = "6s"
)

// nsPrefix begins every name the demo makes: namespaces and the WireGuard
// interfaces (whose names are global on the host). The commands the demo
// prints name them, so the default is short and fixed; a test gives a
// prefix of its own, so that it never touches a demo someone runs.
var nsPrefix = "edge-"

type popSpec struct {
	name, region, country string
	asn                   int
	ip                    string // on the POPs' segment
	subnet                string // 6PN subnet (hex)
	backend               bool   // a demo backend lives behind this POP
}

var pops = []popSpec{
	{"gru", "sa", "BR", 65101, "198.51.100.11", "1", false},
	{"iad", "us", "US", 65102, "198.51.100.12", "2", true},
	{"fra", "eu", "DE", 65103, "198.51.100.13", "3", true},
}

func (p popSpec) ns() string   { return nsPrefix + p.name }
func (p popSpec) beNS() string { return nsPrefix + "be-" + p.name }

// wg is the POP's WireGuard interface, at most 15 characters.
func (p popSpec) wg() string {
	if n := nsPrefix + p.name + "-wg"; len(n) <= 15 {
		return n
	}
	return fmt.Sprintf("w%x-%s", crc32.ChecksumIEEE([]byte(nsPrefix))&0xffffff, p.name)
}
func (p popSpec) lan6() string      { return fmt.Sprintf("fdaa:0:1:%s::fe", p.subnet) }
func (p popSpec) backend6() string  { return fmt.Sprintf("fdaa:0:1:%s::10", p.subnet) }
func (p popSpec) backendID() string { return "demo-" + p.name + "-1" }

// namespaces lists every namespace the demo makes, for the cleanup of a
// crashed run.
func namespaces() []string {
	names := []string{nsPrefix + "inet", nsPrefix + "client"}
	for _, p := range pops {
		names = append(names, p.ns(), p.beNS())
	}
	return names
}
