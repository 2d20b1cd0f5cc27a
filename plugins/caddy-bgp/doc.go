// Package bgp is the Caddy app `bgp`: it announces the POP's anycast
// prefixes over BGP (an embedded GoBGP speaker, one per process) while the
// POP can serve them, and drains (RFC 8326) and withdraws them when it
// cannot. It follows the POP of the `edgeroute` app through pop.POP; the
// speaker and its decisions live in package anycast. See README.md.
package bgp
