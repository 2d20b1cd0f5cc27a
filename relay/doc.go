// Package relay moves bytes between pairs of TCP sockets on a few event
// loops, the way HAProxy does, instead of parking two goroutines on every
// proxied connection.
//
// A connection handed to an Engine costs a small struct and two map
// entries while it is idle: no goroutine stack, no buffer, no pipe. Each
// loop owns a level-triggered epoll set; its goroutine parks in the Go
// runtime's poller on that set's descriptor (no thread blocks in
// epoll_wait) and collects events without waiting. When a socket is readable,
// the loop reads it into its scratch buffer and writes to the peer; only what
// the peer cannot take yet is kept, and reading from that side pauses until
// it drains. A read that fills the scratch buffer marks a bulk transfer,
// which then moves through a pipe with splice(2) and never enters user
// space. Each direction ends with a half-close (shutdown SHUT_WR), so a
// client that finishes sending still receives the whole answer.
//
// A Listener goes further: the loops accept its connections themselves, ask
// a Router for the backend, start a non-blocking connect and send the
// client's first bytes at once (to a nearby backend the handshake is over
// when connect returns), trying the next backend when a connect fails or
// outlasts its timeout. A new connection then costs the system calls the
// kernel needs and nothing else: no goroutine, no hand-off between
// threads, no registration with the Go runtime's poller.
//
// The package imports neither Caddy nor CoreDNS.
package relay
