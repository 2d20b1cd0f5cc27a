package edgeroute

import (
	"net"
	"time"

	"github.com/mholt/caddy-l4/layer4"
	"github.com/pires/go-proxyproto"

	"github.com/edgeproxy/edgeproxy/relay"
)

// proxy copies bytes both ways until both directions are done, then calls
// done with how many went to the backend (in) and to the client (out).
//
// When the client side is the raw *net.TCPConn the listener accepted, the
// pair is handed to the shared relay engine: the handler's goroutine
// returns at once, and an idle connection costs no goroutine, buffer or
// pipe; small messages are copied with a read and a write, bulk transfers
// with splice(2). Bytes a matcher already read are sent first. Behind a
// wrapping handler (TLS termination, say) the copy runs here, through the
// wrapped connection, with two goroutines.
//
// Each direction ends with a half-close, so a client that shuts down its
// write side still receives the whole response, and the reverse.
func (h *Handler) proxy(cx *layer4.Connection, eng *relay.Engine, up upstream, done func(in, out int64, err error)) {
	var head []byte
	if h.ProxyProtocol != "" {
		var err error
		if head, err = proxyHeader(h.ProxyProtocol, cx.RemoteAddr(), cx.LocalAddr()); err != nil {
			up.close()
			done(0, 0, err)
			return
		}
	}
	if up.conn == nil { // dialled for the engine: the client is plain TCP
		head = append(head, cx.MatchingBytes()...)
		if err := relay.WriteAll(up.fd, head); err != nil {
			up.close()
			done(0, 0, err)
			return
		}
		in := int64(len(head))
		err := eng.RelayFD(cx.Conn.(*net.TCPConn), up.fd, time.Duration(h.IdleTimeout), func(r relay.Result) {
			done(in+r.ClientToBackend, r.BackendToClient, r.Err)
		})
		if err != nil {
			up.close()
			done(in, 0, err)
		}
		return
	}
	if len(head) > 0 {
		if _, err := up.conn.Write(head); err != nil {
			up.close()
			done(0, 0, err)
			return
		}
	}
	upBytes, out, err := relay.CopyBothWays(cx, up.conn, time.Duration(h.IdleTimeout))
	done(upBytes, out, err)
}

func (u upstream) close() {
	if u.conn != nil {
		u.conn.Close()
	} else {
		relay.CloseFD(u.fd)
	}
}

func proxyHeader(version string, client, local net.Addr) ([]byte, error) {
	v := byte(1)
	if version == "v2" {
		v = 2
	}
	return proxyproto.HeaderProxyFromAddrs(v, client, local).Format()
}
