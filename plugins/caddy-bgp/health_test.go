package bgp_test

import (
	"fmt"
	"net"
	"testing"
	"time"
)

// TestActiveHealthCheckWithdraws: the backends die, edgeroute's active TCP
// check takes them out after interval × fall, and the prefix leaves BIRD
// within that plus a second; they come back and so does the prefix.
func TestActiveHealthCheckWithdraws(t *testing.T) {
	n := network(t)
	listen := func(port int) net.Listener {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		t.Cleanup(func() { ln.Close() })
		return ln
	}
	b1, b2 := listen(9001), listen(9002)
	p := newPOP(t)
	p.edge = "\t\thealth myapp {\n\t\t\ttcp\n\t\t\tinterval 500ms\n\t\t\ttimeout 200ms\n\t\t\trise 2\n\t\t\tfall 2\n\t\t}"
	p.start(p.caddyfile(""))
	n.bird.WaitEstablished(20*time.Second, "pop4")
	n.waitRoute(t, "192.0.2.1/32", true, 10*time.Second)

	start := time.Now()
	b1.Close()
	b2.Close()
	took := n.waitRoute(t, "192.0.2.1/32", false, 5*time.Second)
	bound := 2*500*time.Millisecond + time.Second
	t.Logf("both backends killed -> prefix gone at BIRD after %v (check interval 500ms × fall 2, bound %v)", took.Round(time.Millisecond), bound)
	if time.Since(start) > bound {
		t.Errorf("withdrawn after %v, want within interval × fall + 1s = %v", time.Since(start), bound)
	}
	listen(9001)
	n.waitRoute(t, "192.0.2.1/32", true, 10*time.Second)
}
