package anycast

import (
	"context"
	"fmt"
	"net/netip"
	"reflect"
	"strconv"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/server"
	"google.golang.org/protobuf/types/known/anypb"
)

// speaker is the one GoBGP server of the process and what it was told: the
// global settings, the peers and the paths in its RIB. Every change is made
// as a difference against that record, so an unchanged config touches
// nothing. Calls are serialised by the Manager.
type speaker struct {
	srv    *server.BgpServer
	log    *zapLogger
	global *globalConf // nil while stopped
	peers  map[netip.Addr]Peer
	paths  map[netip.Prefix]sentPath
	// withdrawnAt is when a path was last withdrawn (see shutdownLinger).
	withdrawnAt time.Time
}

type globalConf struct {
	asn      uint32
	routerID netip.Addr
	port     uint16
	addrs    string
}

type sentPath struct {
	attrs pathAttrs
	path  *api.Path
}

// importPolicy accepts the POP's own paths and rejects every route a peer
// sends: the POP announces, it does not route. GoBGP applies the global
// import policy to local paths too, hence the accepting statement.
const importPolicy = "edgeproxy-anycast-import"

func newSpeaker(log *zapLogger) *speaker {
	s := &speaker{
		srv:   server.NewBgpServer(server.LoggerOption(log)),
		log:   log,
		peers: map[netip.Addr]Peer{},
		paths: map[netip.Prefix]sentPath{},
	}
	// Serve never returns: the server lives as long as the process.
	go s.srv.Serve()
	return s
}

func globalOf(c *Config) *globalConf {
	g := &globalConf{asn: c.ASN, routerID: c.RouterID, port: c.ListenPort}
	g.addrs = fmt.Sprint(c.ListenAddrs)
	return g
}

// applyGlobal starts the speaker, or restarts it when the AS, router ID
// or listener changed (GoBGP cannot change them on a running server:
// every session resets, which the operator asked for).
func (s *speaker) applyGlobal(ctx context.Context, c *Config) error {
	g := globalOf(c)
	if s.global != nil && *s.global == *g {
		return nil
	}
	if s.global != nil {
		s.log.Info("speaker identity or listener changed: restarting every session", nil)
		s.stop(ctx)
	}
	req := &api.Global{Asn: c.ASN, RouterId: c.RouterID.String(), ListenPort: -1}
	if c.ListenPort != 0 {
		req.ListenPort = int32(c.ListenPort)
		for _, a := range c.ListenAddrs {
			req.ListenAddresses = append(req.ListenAddresses, a.String())
		}
	}
	if err := s.srv.StartBgp(ctx, &api.StartBgpRequest{Global: req}); err != nil {
		return fmt.Errorf("starting the BGP speaker: %v", err)
	}
	// SetPolicies defines the policy (it keeps assignments as they are);
	// SetPolicyAssignment then makes it the global import policy.
	err := s.srv.SetPolicies(ctx, &api.SetPoliciesRequest{
		Policies: []*api.Policy{{
			Name: importPolicy,
			Statements: []*api.Statement{{
				Name:       importPolicy + "-local",
				Conditions: &api.Conditions{RouteType: api.Conditions_ROUTE_TYPE_LOCAL},
				Actions:    &api.Actions{RouteAction: api.RouteAction_ACCEPT},
			}},
		}},
	})
	if err == nil {
		err = s.srv.SetPolicyAssignment(ctx, &api.SetPolicyAssignmentRequest{Assignment: &api.PolicyAssignment{
			Name:          "global",
			Direction:     api.PolicyDirection_IMPORT,
			Policies:      []*api.Policy{{Name: importPolicy}},
			DefaultAction: api.RouteAction_REJECT,
		}})
	}
	if err != nil {
		s.srv.StopBgp(ctx, &api.StopBgpRequest{})
		return fmt.Errorf("setting the import policy: %v", err)
	}
	s.global = g
	return nil
}

// stop closes every session (a Cease to each peer) and forgets peers and
// paths. The server loop keeps running for a later start.
func (s *speaker) stop(ctx context.Context) {
	if s.global == nil {
		return
	}
	s.srv.StopBgp(ctx, &api.StopBgpRequest{})
	s.global = nil
	for a := range s.peers {
		s.log.forget(a.String())
	}
	s.peers = map[netip.Addr]Peer{}
	s.paths = map[netip.Prefix]sentPath{}
}

// applyPeers adds, removes and replaces peers so that exactly want are
// configured. A peer whose settings are unchanged is not touched.
func (s *speaker) applyPeers(ctx context.Context, want []Peer) error {
	var secrets []string
	next := map[netip.Addr]Peer{}
	for _, p := range want {
		next[p.Address] = p
		if p.Password != "" {
			secrets = append(secrets, p.Password)
		}
	}
	s.log.setSecrets(secrets)
	for addr, old := range s.peers {
		if p, ok := next[addr]; ok && reflect.DeepEqual(p, old) {
			continue
		}
		if err := s.srv.DeletePeer(ctx, &api.DeletePeerRequest{Address: addr.String()}); err != nil {
			return fmt.Errorf("peer %s: removing: %v", addr, err)
		}
		delete(s.peers, addr)
		s.log.forget(addr.String())
	}
	for _, p := range want {
		if _, ok := s.peers[p.Address]; ok {
			continue
		}
		if err := s.srv.AddPeer(ctx, &api.AddPeerRequest{Peer: apiPeer(p)}); err != nil {
			return fmt.Errorf("peer %s: %v", p.Address, err)
		}
		s.peers[p.Address] = p
	}
	return nil
}

func apiPeer(p Peer) *api.Peer {
	hold := uint64(p.Hold.Seconds())
	ap := &api.Peer{
		Conf: &api.PeerConf{
			NeighborAddress: p.Address.String(),
			PeerAsn:         p.RemoteAS,
			AuthPassword:    p.Password,
		},
		Timers: &api.Timers{Config: &api.TimersConfig{
			HoldTime:          hold,
			KeepaliveInterval: max(hold/3, 1),
			ConnectRetry:      uint64(p.ConnectRetry.Seconds()),
			// GoBGP waits this long in Idle after a session went down
			// before it dials again; the connect retry is the pace the
			// operator chose.
			IdleHoldTimeAfterReset: uint64(p.ConnectRetry.Seconds()),
		}},
		Transport: &api.Transport{PassiveMode: p.Passive, RemotePort: uint32(p.Port)},
	}
	if p.LocalAddress.IsValid() {
		ap.Transport.LocalAddress = p.LocalAddress.String()
	}
	if p.Multihop > 0 {
		ap.EbgpMultihop = &api.EbgpMultihop{Enabled: true, MultihopTtl: uint32(p.Multihop)}
	}
	for _, f := range p.Families {
		ap.AfiSafis = append(ap.AfiSafis, &api.AfiSafi{Config: &api.AfiSafiConfig{Family: apiFamily(f), Enabled: true}})
	}
	return ap
}

func apiFamily(f Family) *api.Family {
	if f == IPv6 {
		return &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}
	}
	return &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
}

// pathAttrs is what a prefix is announced with; equal attrs mean no
// update is sent.
type pathAttrs struct {
	nextHop     netip.Addr
	med         uint32
	hasMED      bool
	communities string
	large       string
	prepend     int
}

// attrsFor is the announcement of one prefix of a, with the drain
// attributes added while draining.
func attrsFor(a *Announce, d *Drain, draining bool) (pathAttrs, []Community, []LargeCommunity) {
	at := pathAttrs{nextHop: a.NextHop, med: a.MED, hasMED: a.HasMED, prepend: a.Prepend}
	comms := append([]Community(nil), a.Communities...)
	large := append([]LargeCommunity(nil), a.LargeCommunities...)
	if draining {
		at.prepend += d.Prepend
		if d.HasMED {
			at.med, at.hasMED = d.MED, true
		}
		for _, c := range d.Communities {
			if !containsComm(comms, c) {
				comms = append(comms, c)
			}
		}
		for _, c := range d.LargeCommunities {
			if !containsLarge(large, c) {
				large = append(large, c)
			}
		}
	}
	at.communities = fmt.Sprint(comms)
	at.large = fmt.Sprint(large)
	return at, comms, large
}

func containsComm(l []Community, c Community) bool {
	for _, x := range l {
		if x == c {
			return true
		}
	}
	return false
}

func containsLarge(l []LargeCommunity, c LargeCommunity) bool {
	for _, x := range l {
		if x == c {
			return true
		}
	}
	return false
}

// announce puts the prefix in the RIB with attrs, unless it is there with
// them already. It reports whether an update went out.
func (s *speaker) announce(ctx context.Context, p netip.Prefix, asn uint32, a *Announce, d *Drain, draining bool) (bool, error) {
	p = p.Masked()
	at, comms, large := attrsFor(a, d, draining)
	if old, ok := s.paths[p]; ok && old.attrs == at {
		return false, nil
	}
	path, err := apiPath(p, asn, at, comms, large)
	if err != nil {
		return false, err
	}
	if _, err := s.srv.AddPath(ctx, &api.AddPathRequest{Path: path}); err != nil {
		return false, fmt.Errorf("announcing %s: %v", p, err)
	}
	s.paths[p] = sentPath{attrs: at, path: path}
	return true, nil
}

// withdraw takes the prefix out of the RIB if it is there.
func (s *speaker) withdraw(ctx context.Context, p netip.Prefix) (bool, error) {
	p = p.Masked()
	old, ok := s.paths[p]
	if !ok {
		return false, nil
	}
	if err := s.srv.DeletePath(ctx, &api.DeletePathRequest{Family: old.path.Family, Path: old.path}); err != nil {
		return false, fmt.Errorf("withdrawing %s: %v", p, err)
	}
	delete(s.paths, p)
	s.withdrawnAt = time.Now()
	return true, nil
}

func apiPath(p netip.Prefix, asn uint32, at pathAttrs, comms []Community, large []LargeCommunity) (*api.Path, error) {
	nlri, err := anypb.New(&api.IPAddressPrefix{Prefix: p.Addr().String(), PrefixLen: uint32(p.Bits())})
	if err != nil {
		return nil, err
	}
	var attrs []*anypb.Any
	origin, _ := anypb.New(&api.OriginAttribute{Origin: 0}) // IGP
	attrs = append(attrs, origin)
	seg := &api.AsSegment{Type: api.AsSegment_AS_SEQUENCE}
	for range at.prepend {
		seg.Numbers = append(seg.Numbers, asn)
	}
	aspath := &api.AsPathAttribute{}
	if len(seg.Numbers) > 0 {
		aspath.Segments = []*api.AsSegment{seg}
	}
	a, _ := anypb.New(aspath)
	attrs = append(attrs, a)
	fam := apiFamily(IPv4)
	if p.Addr().Is4() {
		nh := "0.0.0.0" // unspecified: GoBGP sends the session's local address
		if at.nextHop.IsValid() {
			nh = at.nextHop.String()
		}
		a, _ := anypb.New(&api.NextHopAttribute{NextHop: nh})
		attrs = append(attrs, a)
	} else {
		fam = apiFamily(IPv6)
		nh := "::"
		if at.nextHop.IsValid() {
			nh = at.nextHop.String()
		}
		a, _ := anypb.New(&api.MpReachNLRIAttribute{Family: fam, NextHops: []string{nh}, Nlris: []*anypb.Any{nlri}})
		attrs = append(attrs, a)
	}
	if at.hasMED {
		a, _ := anypb.New(&api.MultiExitDiscAttribute{Med: at.med})
		attrs = append(attrs, a)
	}
	if len(comms) > 0 {
		c := &api.CommunitiesAttribute{}
		for _, x := range comms {
			c.Communities = append(c.Communities, uint32(x))
		}
		a, _ := anypb.New(c)
		attrs = append(attrs, a)
	}
	if len(large) > 0 {
		c := &api.LargeCommunitiesAttribute{}
		for _, x := range large {
			c.Communities = append(c.Communities, &api.LargeCommunity{GlobalAdmin: x.Global, LocalData1: x.Local1, LocalData2: x.Local2})
		}
		a, _ := anypb.New(c)
		attrs = append(attrs, a)
	}
	return &api.Path{Family: fam, Nlri: nlri, Pattrs: attrs}, nil
}

// peerStatus reads the speaker's view of every configured peer.
func (s *speaker) peerStatus(ctx context.Context) []PeerStatus {
	if s.global == nil {
		return nil
	}
	// Routes of a peer in the global table: the import policy keeps this
	// at 0 (GoBGP's own "accepted" count ignores the global policy).
	installed := map[string]uint64{}
	for _, f := range []Family{IPv4, IPv6} {
		s.srv.ListPath(ctx, &api.ListPathRequest{TableType: api.TableType_GLOBAL, Family: apiFamily(f)}, func(d *api.Destination) {
			for _, p := range d.Paths {
				if p.NeighborIp != "" && p.NeighborIp != "<nil>" {
					installed[p.NeighborIp]++
				}
			}
		})
	}
	var out []PeerStatus
	s.srv.ListPeer(ctx, &api.ListPeerRequest{EnableAdvertised: true}, func(p *api.Peer) {
		addr, err := netip.ParseAddr(p.GetState().GetNeighborAddress())
		if err != nil {
			addr, _ = netip.ParseAddr(p.GetConf().GetNeighborAddress())
		}
		ps := PeerStatus{Address: addr.String(), RemoteAS: p.GetConf().GetPeerAsn()}
		if st := p.GetState(); st != nil {
			ps.State = sessionState(st.SessionState)
			if m := st.GetMessages(); m != nil {
				ps.UpdatesSent = m.GetSent().GetUpdate()
				ps.UpdatesReceived = m.GetReceived().GetUpdate()
				ps.WithdrawalsSent = m.GetSent().GetWithdrawPrefix()
			}
			ps.RouterID = st.RouterId
		}
		if t := p.GetTimers().GetState(); t != nil {
			ps.NegotiatedHold = t.NegotiatedHoldTime
			if ps.State == "established" && t.Uptime != nil && t.Uptime.Seconds > 0 {
				ps.Up = t.Uptime.AsTime()
			}
			if t.Downtime != nil && t.Downtime.Seconds > 0 {
				ps.Down = t.Downtime.AsTime()
			}
		}
		for _, af := range p.GetAfiSafis() {
			st := af.GetState()
			if st == nil {
				continue
			}
			ps.Received += st.Received
			ps.Advertised += st.Advertised
		}
		ps.Installed = installed[ps.Address]
		ps.LastError = s.log.lastError(ps.Address)
		out = append(out, ps)
	})
	return out
}

func sessionState(st api.PeerState_SessionState) string {
	switch st {
	case api.PeerState_IDLE:
		return "idle"
	case api.PeerState_CONNECT:
		return "connect"
	case api.PeerState_ACTIVE:
		return "active"
	case api.PeerState_OPENSENT:
		return "opensent"
	case api.PeerState_OPENCONFIRM:
		return "openconfirm"
	case api.PeerState_ESTABLISHED:
		return "established"
	}
	return "unknown(" + strconv.Itoa(int(st)) + ")"
}
