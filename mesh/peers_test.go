package mesh

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/edgeproxy/edgeproxy/routing"
	"github.com/edgeproxy/edgeproxy/sixpn"
)

func pub(t *testing.T) (wgtypes.Key, string) {
	k, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k, k.PublicKey().String()
}

func TestPeersFromPopsSkipsSelfUnpublishedAndRefusedRows(t *testing.T) {
	plan, _ := sixpn.ParseNetwork("fdaa:0:1::/48")
	selfKey, selfPub := pub(t)
	_, kb := pub(t)
	_, kc := pub(t)
	_, kd := pub(t)
	pops := []routing.Pop{
		{Node: "self", PublicKey: selfPub, Prefix6: "fdaa:0:1:1::/64", Endpoint: "192.0.2.1:51820"},
		{Node: "b", PublicKey: kb, Prefix6: "fdaa:0:1:2::/64,10.50.2.0/24", Endpoint: "192.0.2.2:51820"},
		{Node: "c-dup", PublicKey: kc, Prefix6: "fdaa:0:1:1::/64", Endpoint: "192.0.2.3:51820"},
		{Node: "d-nokey", Prefix6: "fdaa:0:1:4::/64"},
		{Node: "e-badkey", PublicKey: "nope", Prefix6: "fdaa:0:1:5::/64"},
		{Node: "f-foreign", PublicKey: kd, Prefix6: "fd99::/64"},
		{Node: "g-mykey", PublicKey: selfPub, Prefix6: "fdaa:0:1:7::/64"},
	}
	peers, problems := PeersFromPops(plan, "self", selfKey.PublicKey(), pops, nil)
	if len(peers) != 1 || peers[0].Node != "b" || peers[0].Endpoint != "192.0.2.2:51820" ||
		len(peers[0].AllowedIPs) != 2 || peers[0].AllowedIPs[1].String() != "10.50.2.0/24" {
		t.Fatalf("peers %+v", peers)
	}
	var msgs []string
	for _, p := range problems {
		msgs = append(msgs, p.Error())
	}
	all := strings.Join(msgs, "\n")
	for _, want := range []string{`POP "c-dup": prefix fdaa:0:1:1::/64 overlaps POP "self"'s`, `POP "e-badkey": public key`,
		`POP "f-foreign"`, `POP "g-mykey": publishes this POP's own public key`} {
		if !strings.Contains(all, want) {
			t.Errorf("problems lack %q:\n%s", want, all)
		}
	}
	if strings.Contains(all, "d-nokey") {
		t.Errorf("an unpublished row is a problem:\n%s", all)
	}
}

func TestUAPIRoundTrip(t *testing.T) {
	k, _ := pub(t)
	port := 51820
	ka := 25 * time.Second
	_, n, _ := net.ParseCIDR("fdaa:0:1:2::/64")
	s := uapiSet(wgtypes.Config{PrivateKey: &k, ListenPort: &port, Peers: []wgtypes.PeerConfig{
		{PublicKey: k.PublicKey(), Endpoint: &net.UDPAddr{IP: net.ParseIP("2001:db8::1"), Port: 9}, PersistentKeepaliveInterval: &ka, ReplaceAllowedIPs: true, AllowedIPs: []net.IPNet{*n}},
		{PublicKey: k.PublicKey(), Remove: true},
	}})
	for _, want := range []string{"listen_port=51820\n", "endpoint=[2001:db8::1]:9\n", "persistent_keepalive_interval=25\n", "replace_allowed_ips=true\nallowed_ip=fdaa:0:1:2::/64\n", "remove=true\n"} {
		if !strings.Contains(s, want) {
			t.Errorf("set lacks %q:\n%s", want, s)
		}
	}
	get := strings.Replace(s, "replace_allowed_ips=true\n", "last_handshake_time_sec=1700000000\nlast_handshake_time_nsec=5\nrx_bytes=7\ntx_bytes=9\n", 1)
	d, err := uapiGet("x", get)
	if err != nil {
		t.Fatal(err)
	}
	if d.PublicKey != k.PublicKey() || d.ListenPort != 51820 || len(d.Peers) != 2 || d.Peers[0].ReceiveBytes != 7 ||
		d.Peers[0].LastHandshakeTime.Unix() != 1700000000 || len(d.Peers[0].AllowedIPs) != 1 || d.Peers[0].Endpoint.Port != 9 {
		t.Fatalf("%+v", d)
	}
}

func TestKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "wg6pn", "private.key")
	k, created, err := LoadOrCreateKey(path)
	if err != nil || !created {
		t.Fatal(created, err)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %o", st.Mode().Perm())
	}
	k2, created, err := LoadOrCreateKey(path)
	if err != nil || created || k2 != k {
		t.Fatal("the key changed on the second start", created, err)
	}
	os.Chmod(path, 0o644)
	if _, _, err := LoadOrCreateKey(path); err == nil || !strings.Contains(err.Error(), "accessible by others") || strings.Contains(err.Error(), k.String()) {
		t.Fatalf("world-readable key: %v", err)
	}
	os.Chmod(path, 0o600)
	os.WriteFile(path, []byte("not a key\n"), 0o600)
	if _, _, err := LoadOrCreateKey(path); err == nil || !strings.Contains(err.Error(), "does not hold a WireGuard private key") {
		t.Fatalf("garbage key: %v", err)
	}
	if _, err := ReadKey(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing: %v", err)
	}
}
