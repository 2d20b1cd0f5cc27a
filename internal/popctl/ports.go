package popctl

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
)

var (
	portsMu    sync.Mutex
	portsGiven = map[int]bool{}
)

// FreePort returns a port free for TCP and UDP on ip ("" for every
// interface) that this process has not handed out before. It picks below
// the kernel's ephemeral range (32768 and up): a port from that range can
// be taken as the source port of some outgoing connection before the POP
// binds it.
func FreePort(ip string) (int, error) {
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 1000 {
		port := 20000 + rand.IntN(12000)
		if portsGiven[port] {
			continue
		}
		addr := net.JoinHostPort(ip, fmt.Sprint(port))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		u, err := net.ListenPacket("udp", addr)
		ln.Close()
		if err == nil {
			u.Close()
			portsGiven[port] = true
			return port, nil
		}
	}
	return 0, errors.New("no free port below the ephemeral range")
}
