package e2e

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/internal/popctl"
)

// TestBridgesCarryChangesBetweenRegions: two regions of two POPs, each a
// cluster of its own, whose first POPs bridge them through a global
// cluster. An insert on a POP that is no bridge routes on a POP of the
// other region that is none either, though neither has the other as a
// member.
func TestBridgesCarryChangesBetweenRegions(t *testing.T) {
	key := newKey(t)
	var pops []*popctl.POP
	var globalSeed string
	for r, region := range []string{"eu", "us"} {
		var seed string
		for i := range 2 {
			o := popctl.Options{Bin: caddyBin, Dir: filepath.Join(t.TempDir(), fmt.Sprint(region, i)),
				Name: fmt.Sprint(region, i), IP: nextIP(), Key: key, Cluster: "e2e-" + region, Region: region,
				ClusterExtra: "sync_interval 200ms\n\t\t\trejoin_interval 500ms", WatchInterval: "10ms"}
			if r == 1 {
				o.Country = "US"
			}
			if seed != "" {
				o.Join = []string{seed}
			}
			if i == 0 {
				port, err := popctl.FreePort(o.IP)
				if err != nil {
					t.Fatal(err)
				}
				addr := net.JoinHostPort(o.IP, fmt.Sprint(port))
				join := ""
				if globalSeed != "" {
					join = "\n\t\t\t\tjoin " + globalSeed
				}
				o.ClusterExtra += "\n\t\t\tbridge {\n\t\t\t\tbind " + addr + "\n\t\t\t\tname e2e-global" + join + "\n\t\t\t}"
				if globalSeed == "" {
					globalSeed = addr
				}
			}
			p, err := popctl.New(o)
			if err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				seed = p.ClusterAddr
			}
			if err := p.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				p.Kill()
				if t.Failed() {
					t.Logf("%s log:\n%s", p.Opts.Name, tail(p.Logs(), 40))
				}
			})
			pops = append(pops, p)
		}
	}
	eu0, eu1, us0, us1 := pops[0], pops[1], pops[2], pops[3]
	eventually(t, 15*time.Second, func() string {
		for _, p := range pops {
			st, err := p.Cluster()
			if err != nil {
				return err.Error()
			}
			if st.Counts["alive"] != 2 {
				return fmt.Sprintf("%s sees %d alive members, want its region's 2", p.Opts.Name, st.Counts["alive"])
			}
		}
		for _, p := range []*popctl.POP{eu0, us0} {
			st, _ := p.Cluster()
			if st.Bridge != "e2e-global" || st.Global == nil || st.Global.Counts["alive"] != 2 {
				return fmt.Sprintf("%s as a bridge: %q %+v", p.Opts.Name, st.Bridge, st.Global)
			}
		}
		// A POP that is no bridge knows its region's bridge as one: it
		// waits for the bridges' floors before it forgets a tombstone.
		for _, p := range []*popctl.POP{eu1, us1} {
			st, _ := p.Cluster()
			if len(st.Members) != 1 || !st.Members[0].Bridge {
				return fmt.Sprintf("%s does not show its region's bridge as one: %+v", p.Opts.Name, st.Members)
			}
		}
		return ""
	})

	port := greeter(t, "be-eu")
	start := time.Now()
	if _, err := eu1.SQL(fmt.Sprintf(`INSERT INTO backends (id, app, region, country, wg_ip, port) VALUES ('be-eu','myapp','eu','DE','127.0.0.1',%d)`, port)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Second, func() string {
		if got := us1.Via(); got != "be-eu" {
			return fmt.Sprintf("us1 routed to %q", got)
		}
		return ""
	})
	t.Logf("an insert on eu1 routed on us1 after %v", time.Since(start).Round(time.Millisecond))
	// And back: a POP of us changes the row, every file agrees.
	if _, err := us1.SQL(`UPDATE backends SET weight = 7 WHERE id = 'be-eu'`); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Second, func() string {
		for _, p := range pops {
			if got, err := p.SQL(`SELECT weight FROM backends WHERE id = 'be-eu'`); err != nil || got != "7" {
				return fmt.Sprintf("%s has weight %q (%v)", p.Opts.Name, got, err)
			}
		}
		return ""
	})
	for _, c := range []struct {
		p      *popctl.POP
		sample string
	}{
		{eu0, `edgeroute_cluster_bridge_relayed_changes_total{to="global"}`},
		{us0, `edgeroute_cluster_bridge_relayed_changes_total{to="region"}`},
		{eu0, `edgeroute_cluster_bridge_members{state="alive"}`},
	} {
		v, err := c.p.Metric(c.sample)
		if err != nil || v == "" || v == "0" {
			m, _ := c.p.Metrics()
			var have []string
			for _, l := range strings.Split(m, "\n") {
				if strings.HasPrefix(l, "edgeroute_cluster_bridge") {
					have = append(have, l)
				}
			}
			t.Errorf("%s: %s = %q (%v); bridge metrics:\n%s", c.p.Opts.Name, c.sample, v, err, strings.Join(have, "\n"))
		}
	}
	// A reload that changes nothing keeps both of the bridge's nodes:
	// a new node would start its counters from zero.
	before, _ := eu0.Metric(`edgeroute_cluster_bridge_relayed_changes_total{to="global"}`)
	if err := eu0.Reload(); err != nil {
		t.Fatal(err)
	}
	if after, err := eu0.Metric(`edgeroute_cluster_bridge_relayed_changes_total{to="global"}`); err != nil || after != before {
		t.Fatalf("relayed changes after a reload that changed nothing: %q (%v), before %q: the bridge was restarted", after, err, before)
	}
}
