package e2e

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// startedAt is when the POP's wg6pn app logged its start, right after it
// published its row.
func (p *meshPOP) startedAt() time.Time {
	for _, l := range strings.Split(p.logs(), "\n") {
		if !strings.Contains(l, `"wg6pn started"`) {
			continue
		}
		var e struct {
			TS float64 `json:"ts"`
		}
		if json.Unmarshal([]byte(l), &e) == nil && e.TS > 0 {
			sec := int64(e.TS)
			return time.Unix(sec, int64((e.TS-float64(sec))*1e9))
		}
	}
	return time.Time{}
}

func TestMeshThreePOPsFollowTheTable(t *testing.T) {
	m := newMeshNet(t)
	a := m.addPOP("a", 1, "a")
	b := m.addPOP("b", 2, "b")
	c := m.addPOP("c", 3, "c")
	a.start()
	b.start()
	m.waitMeshed([]*meshPOP{a, b}, 10*time.Second)

	// A new POP: its row reaches A and B, which handshake with it.
	c.start()
	m.waitMeshed([]*meshPOP{a, b, c}, 10*time.Second)
	published := c.startedAt()
	for _, p := range []*meshPOP{a, b} {
		hs := p.handshakeWith("c")
		t.Logf("row of c published -> first handshake at %s: %v", p.name, hs.Sub(published).Round(time.Millisecond))
		if hs.Sub(published) > 3*time.Second {
			t.Errorf("%s handshook with c %v after its row was published", p.name, hs.Sub(published))
		}
	}

	// 6PN addresses reach each other.
	for _, p := range []*meshPOP{a, b, c} {
		for _, q := range []*meshPOP{a, b, c} {
			if p != q {
				if out, err := p.ns.Run("ping", "-6", "-c", "1", "-W", "2", q.addr6()); err != nil {
					t.Fatalf("ping %s -> %s: %v\n%s", p.name, q.name, err, out)
				}
			}
		}
	}
	v := a.view()
	if v.Address != "fdaa:0:1:a::1" || v.Prefix != "fdaa:0:1:a::/64" || len(v.Peers) != 2 {
		t.Fatalf("view %+v", v)
	}
	for _, q := range v.Peers {
		if len(q.AllowedIPs) != 1 || !strings.HasPrefix(q.AllowedIPs[0], "fdaa:0:1:"+q.Node+"::/64") {
			t.Fatalf("peer %s allowed %v", q.Node, q.AllowedIPs)
		}
	}

	// The CLI and metrics tell the same.
	out, err := a.caddy("wg6pn", "status")
	if err != nil || !strings.Contains(out, "fdaa:0:1:b::/64") || !strings.Contains(out, "s ago") {
		t.Fatalf("caddy wg6pn status: %v\n%s", err, out)
	}
	metrics := a.metrics()
	for _, want := range []string{"wg6pn_peers 2", `wg6pn_peer_last_handshake_age_seconds{peer="b"}`, `wg6pn_peer_bytes_total{direction="rx",peer="c"}`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}

	// A reload with the same config touches no session.
	before := a.wgHandshakes()
	hsB, hsC := a.handshakeWith("b"), a.handshakeWith("c")
	if err := a.reload(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	if got := a.handshakeWith("b"); !got.Equal(hsB) {
		t.Fatalf("reload restarted the session with b: %v -> %v", hsB, got)
	}
	if after := a.wgHandshakes(); len(after) != len(before) {
		t.Fatalf("peers after reload: %v", after)
	}

	// B moves to another port: A and C handshake with B again within 5s,
	// and the session between A and C is untouched.
	b.port = 51821
	moved := time.Now()
	if err := b.reload(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !a.handshakeWith("b").After(moved) || !c.handshakeWith("b").After(moved) {
		if time.Now().After(deadline) {
			t.Fatalf("no handshake with b's new endpoint within 5s (a: %v, c: %v, moved %v)", a.handshakeWith("b"), c.handshakeWith("b"), moved)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("endpoint change -> handshake at a: %v", a.handshakeWith("b").Sub(moved).Round(time.Millisecond))
	if got := a.handshakeWith("c"); !got.Equal(hsC) {
		t.Fatalf("a's session with c restarted on b's move: %v -> %v", hsC, got)
	}
	for _, p := range a.view().Peers {
		if p.Node == "b" && p.Endpoint != "198.51.100.2:51821" {
			t.Fatalf("a dials b at %s", p.Endpoint)
		}
	}
	if out, err := a.ns.Run("ping", "-6", "-c", "1", "-W", "2", b.addr6()); err != nil {
		t.Fatalf("ping b after its move: %v\n%s", err, out)
	}

	// C is retired: its row deleted at A, the peer leaves every POP.
	c.stop()
	a.sql("DELETE FROM pops WHERE node = 'c'")
	deadline = time.Now().Add(3 * time.Second)
	for {
		gone := true
		for _, p := range []*meshPOP{a, b} {
			if len(p.wgHandshakes()) != 1 || !p.handshakeWith("c").IsZero() {
				gone = false
			}
		}
		if gone {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("c still a peer 3s after its row was deleted: a %v b %v", a.wgHandshakes(), b.wgHandshakes())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if routes, _ := a.ns.Run("ip", "-6", "route", "show", "dev", a.iface); strings.Contains(routes, "fdaa:0:1:c::") {
		t.Fatalf("route to c kept: %s", routes)
	}
}

var (
	lossRe = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)
	rttRe  = regexp.MustCompile(`rtt min/avg/max/mdev = [\d.]+/[\d.]+/([\d.]+)/`)
)

// TestMeshKeyRotation rotates A's key while B pings A every 10 ms and
// reports how long the mesh was interrupted.
func TestMeshKeyRotation(t *testing.T) {
	m := newMeshNet(t)
	a := m.addPOP("a", 1, "a")
	b := m.addPOP("b", 2, "b")
	a.start()
	b.start()
	m.waitMeshed([]*meshPOP{a, b}, 10*time.Second)
	old := a.view().PublicKey
	done := make(chan string)
	go func() {
		out, _ := b.ns.Run("ping", "-6", "-i", "0.01", "-c", "400", "-W", "1", a.addr6())
		done <- out
	}()
	time.Sleep(time.Second)
	out, err := a.caddy("wg6pn", "rotate")
	if err != nil {
		t.Fatalf("caddy wg6pn rotate: %v\n%s", err, out)
	}
	res := <-done
	mm := lossRe.FindStringSubmatch(res)
	if mm == nil {
		t.Fatalf("ping: %s", res)
	}
	sent, _ := strconv.Atoi(mm[1])
	got, _ := strconv.Atoi(mm[2])
	// Packets sent while the peers disagree on the key wait in the
	// device's queue for the new handshake: the longest round trip is how
	// long the mesh was interrupted, plus any pings lost outright.
	maxRTT := 0.0
	if r := rttRe.FindStringSubmatch(res); r != nil {
		maxRTT, _ = strconv.ParseFloat(r[1], 64)
	}
	t.Logf("key rotation: %d of %d pings (10 ms apart) lost, longest round trip %.0f ms: the mesh paused about %.0f ms",
		sent-got, sent, maxRTT, maxRTT+float64((sent-got)*10))
	if maxRTT > 1000 {
		t.Errorf("a ping waited %.0f ms through the rotation", maxRTT)
	}
	if v := a.view(); v.PublicKey == old || !strings.Contains(out, v.PublicKey) {
		t.Fatalf("key not rotated: %s -> %s (%s)", old, v.PublicKey, out)
	}
	for _, p := range b.view().Peers {
		if p.Node == "a" && p.PublicKey != a.view().PublicKey {
			t.Fatalf("b still has a's old key")
		}
	}
	if sent-got > 100 {
		t.Fatalf("rotation interrupted the mesh for more than a second (%d pings lost)", sent-got)
	}
	if out, err := b.ns.Run("ping", "-6", "-c", "1", "-W", "2", a.addr6()); err != nil {
		t.Fatalf("ping after rotation: %v\n%s", err, out)
	}
}

func (p *meshPOP) metrics() string {
	resp, err := p.http().Get("http://127.0.0.1:2019/metrics")
	if err != nil {
		p.m.t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return b.String()
}

// TestMeshRefusesOverlappingAndForeignRows: a row claiming B's /64, and one
// outside the network, are refused with a log line naming both POPs and
// never installed; B keeps its session.
func TestMeshRefusesOverlappingAndForeignRows(t *testing.T) {
	m := newMeshNet(t)
	a := m.addPOP("a", 1, "a")
	b := m.addPOP("b", 2, "b")
	a.start()
	b.start()
	m.waitMeshed([]*meshPOP{a, b}, 10*time.Second)
	hsB := a.handshakeWith("b")
	a.sql(fmt.Sprintf("INSERT INTO pops (node, region, public_key, endpoint, prefix6) VALUES ('rogue', 'eu', '%s', '198.51.100.9:51820', 'fdaa:0:1:b::/64'), ('alien', 'eu', '%s', '198.51.100.8:51820', 'fd99:1:2:3::/64')",
		newKey(t), newKey(t)))
	want := []string{`POP \"rogue\": prefix fdaa:0:1:b::/64 overlaps POP \"b\"'s`, `POP \"alien\": prefix fd99:1:2:3::/64: not a /64 of the network fdaa:0:1::/48`}
	deadline := time.Now().Add(3 * time.Second)
	for _, p := range []*meshPOP{a, b} {
		for {
			logs := p.logs()
			if strings.Contains(logs, want[0]) && strings.Contains(logs, want[1]) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s logged no refusal naming both POPs:\n%s", p.name, logs)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if v := a.view(); len(v.Peers) != 1 || v.Peers[0].Node != "b" || len(v.Refused) != 2 {
		t.Fatalf("a's peers %+v, refused %v", v.Peers, v.Refused)
	}
	if hs := a.wgHandshakes(); len(hs) != 1 {
		t.Fatalf("wg show at a lists %d peers", len(hs))
	}
	if got := a.handshakeWith("b"); !got.Equal(hsB) {
		t.Fatalf("b's session restarted: %v -> %v", hsB, got)
	}
	if out, err := a.ns.Run("ping", "-6", "-c", "1", "-W", "2", b.addr6()); err != nil {
		t.Fatalf("ping b: %v\n%s", err, out)
	}
	if m := a.metrics(); !strings.Contains(m, "wg6pn_refused_rows 2") {
		t.Errorf("metrics lack wg6pn_refused_rows 2")
	}
}
