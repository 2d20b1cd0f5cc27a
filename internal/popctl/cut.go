package popctl

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// Cut drops a POP's cluster traffic with nftables (root only): everything
// to or from its cluster port, and streams it dials to the other POPs'
// cluster ports (the cluster dials from its bind address). Its proxy
// listener and admin API keep working.
type Cut struct{ table string }

// CutOff cuts victim from others.
func CutOff(victim *POP, others []*POP) (*Cut, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("cutting a POP off needs root (nftables)")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		return nil, errors.New("nft not installed")
	}
	table := fmt.Sprintf("edgeproxy_cut_%d_%d", os.Getpid(), victim.Opts.ClusterPort)
	ip, port := victim.Opts.IP, victim.Opts.ClusterPort
	var rules strings.Builder
	fmt.Fprintf(&rules, "table inet %s {\n chain out {\n  type filter hook output priority 0; policy accept;\n", table)
	for _, proto := range []string{"tcp", "udp"} {
		fmt.Fprintf(&rules, "  ip daddr %s %s dport %d drop\n", ip, proto, port)
		fmt.Fprintf(&rules, "  ip saddr %s %s sport %d drop\n", ip, proto, port)
		for _, o := range others {
			fmt.Fprintf(&rules, "  ip saddr %s ip daddr %s %s dport %d drop\n", ip, o.Opts.IP, proto, o.Opts.ClusterPort)
		}
	}
	rules.WriteString(" }\n}\n")
	cmd := exec.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("nft: %v: %s", err, out)
	}
	return &Cut{table: table}, nil
}

// Heal removes the cut.
func (c *Cut) Heal() error {
	if c == nil || c.table == "" {
		return nil
	}
	out, err := exec.Command("nft", "delete", "table", "inet", c.table).CombinedOutput()
	if err != nil {
		return fmt.Errorf("nft: %v: %s", err, out)
	}
	c.table = ""
	return nil
}
