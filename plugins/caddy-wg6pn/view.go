package wg6pn

import (
	"net/netip"
	"sort"
	"time"

	"github.com/edgeproxy/edgeproxy/sixpn"
)

// View is the body of GET /wg6pn/: this POP and every peer as the device
// reports it. The private key is never part of it.
type View struct {
	Node       string     `json:"node"`
	Interface  string     `json:"interface"`
	Mode       string     `json:"mode"`
	PublicKey  string     `json:"public_key"`
	Network    string     `json:"network"`
	Prefix     string     `json:"prefix"`
	Address    string     `json:"address"`
	Routes     []string   `json:"routes,omitempty"`
	Endpoint   string     `json:"endpoint"`
	ListenPort int        `json:"listen_port"`
	MTU        int        `json:"mtu"`
	Peers      []PeerView `json:"peers"`
	// Refused lists pops rows not installed (foreign or overlapping
	// prefixes, bad or shared keys), each naming the POPs involved.
	Refused []string `json:"refused,omitempty"`
}

// PeerView is one peer.
type PeerView struct {
	Node       string   `json:"node"`
	PublicKey  string   `json:"public_key"`
	Endpoint   string   `json:"endpoint,omitempty"`
	AllowedIPs []string `json:"allowed_ips"`
	// LastHandshake is zero before the first handshake.
	LastHandshake         time.Time `json:"last_handshake"`
	SecondsSinceHandshake float64   `json:"seconds_since_handshake,omitempty"`
	RxBytes               int64     `json:"rx_bytes"`
	TxBytes               int64     `json:"tx_bytes"`
}

// view reads the device now.
func (a *App) view() (View, error) {
	st, err := a.dev.State()
	if err != nil {
		return View{}, err
	}
	a.mu.Lock()
	v := View{Node: a.node, Interface: a.Interface, Mode: a.dev.Mode(), PublicKey: st.PublicKey.String(),
		Network: a.set.plan.Network.String(), Prefix: a.prefix.String(), Endpoint: a.Endpoint,
		ListenPort: st.ListenPort, MTU: a.MTU, Routes: a.Routes, Refused: append([]string(nil), a.problems...)}
	if a.prefix.IsValid() {
		v.Address = sixpn.Self(a.prefix).String()
	}
	a.mu.Unlock()
	names := make(map[string]string)
	for _, p := range a.dev.Peers() {
		names[p.PublicKey.String()] = p.Node
	}
	now := time.Now()
	v.Peers = []PeerView{}
	for _, p := range st.Peers {
		pv := PeerView{Node: names[p.PublicKey.String()], PublicKey: p.PublicKey.String(), LastHandshake: p.LastHandshakeTime,
			RxBytes: p.ReceiveBytes, TxBytes: p.TransmitBytes, AllowedIPs: []string{}}
		if p.Endpoint != nil {
			if ap, ok := netip.AddrFromSlice(p.Endpoint.IP); ok {
				pv.Endpoint = netip.AddrPortFrom(ap.Unmap(), uint16(p.Endpoint.Port)).String()
			}
		}
		if !p.LastHandshakeTime.IsZero() {
			pv.SecondsSinceHandshake = now.Sub(p.LastHandshakeTime).Seconds()
		}
		for _, n := range p.AllowedIPs {
			pv.AllowedIPs = append(pv.AllowedIPs, n.String())
		}
		v.Peers = append(v.Peers, pv)
	}
	sort.Slice(v.Peers, func(i, j int) bool { return v.Peers[i].Node < v.Peers[j].Node })
	return v, nil
}
