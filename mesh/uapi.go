package mesh

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// The embedded device speaks WireGuard's cross-platform configuration
// protocol (https://www.wireguard.com/xplatform/). These two functions
// write a wgtypes.Config as a "set" and read a "get" into a wgtypes.Device,
// so both device kinds are driven through the same types.

func uapiSet(c wgtypes.Config) string {
	var b strings.Builder
	line := func(k, v string) { b.WriteString(k); b.WriteByte('='); b.WriteString(v); b.WriteByte('\n') }
	if c.PrivateKey != nil {
		line("private_key", hex.EncodeToString(c.PrivateKey[:]))
	}
	if c.ListenPort != nil {
		line("listen_port", strconv.Itoa(*c.ListenPort))
	}
	if c.ReplacePeers {
		line("replace_peers", "true")
	}
	for _, p := range c.Peers {
		line("public_key", hex.EncodeToString(p.PublicKey[:]))
		if p.Remove {
			line("remove", "true")
			continue
		}
		if p.UpdateOnly {
			line("update_only", "true")
		}
		if p.Endpoint != nil {
			line("endpoint", p.Endpoint.String())
		}
		if p.PersistentKeepaliveInterval != nil {
			line("persistent_keepalive_interval", strconv.Itoa(int(p.PersistentKeepaliveInterval.Seconds())))
		}
		if p.ReplaceAllowedIPs {
			line("replace_allowed_ips", "true")
		}
		for _, a := range p.AllowedIPs {
			line("allowed_ip", a.String())
		}
	}
	return b.String()
}

func uapiGet(name, s string) (*wgtypes.Device, error) {
	d := &wgtypes.Device{Name: name, Type: wgtypes.Userspace}
	var peer *wgtypes.Peer
	var hsSec, hsNsec int64
	flush := func() {
		if peer != nil {
			if hsSec != 0 || hsNsec != 0 {
				peer.LastHandshakeTime = time.Unix(hsSec, hsNsec)
			}
			d.Peers = append(d.Peers, *peer)
		}
		hsSec, hsNsec = 0, 0
	}
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			continue
		}
		var err error
		switch k {
		case "private_key":
			var key wgtypes.Key
			if key, err = hexKey(v); err == nil {
				d.PrivateKey = key
				d.PublicKey = key.PublicKey()
			}
		case "listen_port":
			d.ListenPort, err = strconv.Atoi(v)
		case "fwmark":
			d.FirewallMark, err = strconv.Atoi(v)
		case "public_key":
			flush()
			peer = &wgtypes.Peer{}
			peer.PublicKey, err = hexKey(v)
		}
		if peer != nil {
			switch k {
			case "preshared_key":
				peer.PresharedKey, err = hexKey(v)
			case "endpoint":
				peer.Endpoint, err = net.ResolveUDPAddr("udp", v)
			case "last_handshake_time_sec":
				hsSec, err = strconv.ParseInt(v, 10, 64)
			case "last_handshake_time_nsec":
				hsNsec, err = strconv.ParseInt(v, 10, 64)
			case "tx_bytes":
				peer.TransmitBytes, err = strconv.ParseInt(v, 10, 64)
			case "rx_bytes":
				peer.ReceiveBytes, err = strconv.ParseInt(v, 10, 64)
			case "persistent_keepalive_interval":
				var n int
				n, err = strconv.Atoi(v)
				peer.PersistentKeepaliveInterval = time.Duration(n) * time.Second
			case "allowed_ip":
				var n *net.IPNet
				if _, n, err = net.ParseCIDR(v); err == nil {
					peer.AllowedIPs = append(peer.AllowedIPs, *n)
				}
			case "protocol_version":
				peer.ProtocolVersion, err = strconv.Atoi(v)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("device %s: reading %s: %v", name, k, err)
		}
	}
	flush()
	return d, nil
}

func hexKey(s string) (wgtypes.Key, error) {
	var k wgtypes.Key
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(k) {
		return k, fmt.Errorf("not a 32-byte hex key")
	}
	copy(k[:], b)
	return k, nil
}
