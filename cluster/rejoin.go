package cluster

import (
	"sort"
	"time"

	"github.com/hashicorp/memberlist"
)

// seeds are the Join addresses other than this node's own.
func (n *Node) seeds() []string {
	var out []string
	for _, s := range n.cfg.Join {
		if s != n.self && s != n.cfg.Bind && s != n.cfg.Advertise {
			out = append(out, s)
		}
	}
	return out
}

// rejoinLoop joins seeds and failed members that are not members now.
func (n *Node) rejoinLoop() {
	t := time.NewTicker(n.cfg.RejoinInterval)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		alive := map[string]bool{n.self: true}
		for _, m := range n.alive() {
			alive[m.Address()] = true
		}
		want := map[string]bool{}
		for _, s := range n.seeds() {
			if !alive[s] {
				want[s] = true
			}
		}
		n.mu.Lock()
		for _, p := range n.known {
			if p.state == memberlist.StateDead && !alive[p.addr] {
				want[p.addr] = true
			}
		}
		busy := n.inflight["join"]
		if len(want) > 0 && !busy {
			n.inflight["join"] = true
		}
		n.mu.Unlock()
		if len(want) == 0 || busy {
			continue
		}
		addrs := make([]string, 0, len(want))
		for a := range want {
			addrs = append(addrs, a)
		}
		sort.Strings(addrs)
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			defer func() { n.mu.Lock(); delete(n.inflight, "join"); n.mu.Unlock() }()
			if k, err := n.ml.Join(addrs); err == nil {
				n.log.Info("cluster: rejoined", "contacted", k, "tried", addrs)
			}
		}()
	}
}
