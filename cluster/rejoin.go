package cluster

import (
	"math/rand/v2"
	"slices"
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

// rejoinLoop joins seeds and failed members that are not members now
// (those dead for longer than DeadPatience only every DeadRetry). A
// seed once joined is not joined again: the member it led to is then
// known, and rejoined by the address it advertises if it fails. (A seed
// may never show among the members under the address given: a host
// name, a NAT, another address of the same host.)
func (n *Node) rejoinLoop() {
	t := time.NewTicker(n.cfg.RejoinInterval)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		want := map[string]bool{}
		now := time.Now()
		n.mu.Lock()
		var seeds []string
		for _, s := range n.seeds() {
			if !n.seedJoined[s] {
				seeds = append(seeds, s)
			}
		}
		var dead []*peer
		for _, p := range n.known {
			if p.state == memberlist.StateDead {
				if _, due := n.patient(p, p.joinAt, now); due {
					dead = append(dead, p)
				}
			}
		}
		if len(seeds) > 0 || len(dead) > 0 {
			// Not an address a live member holds now (a seed that
			// joined, a member back under a new name). Built only when
			// there is something to join: in a whole cluster the map
			// of every member's address, every round, was an idle
			// node's whole rejoin cost.
			alive := map[string]bool{n.self: true}
			for _, p := range n.known {
				if p.node != nil && p.state == memberlist.StateAlive {
					alive[p.addr] = true
				}
			}
			for _, s := range seeds {
				if !alive[s] {
					want[s] = true
				}
			}
			dead = slices.DeleteFunc(dead, func(p *peer) bool { return alive[p.addr] })
		}
		// A few a round, at random: after a region's cut heals, every
		// member of the majority joining every member of the region (a
		// push and pull of the whole membership each, one after the
		// other) took longer than the heal itself. A member reached
		// learns it was taken for dead and refutes it, and memberlist
		// gossips that to everyone; the others are tried next round.
		rand.Shuffle(len(dead), func(i, j int) { dead[i], dead[j] = dead[j], dead[i] })
		dead = dead[:min(len(dead), deadFanout)]
		for _, p := range dead {
			want[p.addr] = true
		}
		busy := n.inflight["join"]
		if len(want) > 0 && !busy {
			n.inflight["join"] = true
			for _, p := range dead {
				p.joinAt = now
			}
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
			// One address at a time, to know which answered.
			var reached []string
			for _, a := range addrs {
				if _, err := n.ml.Join([]string{a}); err == nil {
					reached = append(reached, a)
				}
			}
			if len(reached) == 0 {
				return
			}
			n.mu.Lock()
			for _, a := range reached {
				n.seedJoined[a] = true
			}
			n.mu.Unlock()
			n.log.Info("cluster: rejoined", "reached", reached, "tried", addrs)
		}()
	}
}
