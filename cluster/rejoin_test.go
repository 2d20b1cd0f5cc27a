package cluster

import (
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// A member that took a cut-off member along when it merged a push (it
// held the same vector before) holds it for unknown again once it is
// declared dead, so the two repair each other after the heal even with
// the push's origin gone.
func TestDeadMemberIsUnknownAgainAfterTheCut(t *testing.T) {
	faults := NewFaults(3)
	nodes := startCluster(t, 3, faults, nil)
	origin, other, cut := nodes[0], nodes[1], nodes[2]
	origin.exec(t, `INSERT INTO backends (id, app, wg_ip, port) VALUES ('before','app','10.0.0.1',80)`)
	converge(t, nodes, 3*time.Second)
	// Anti-entropy at rest: other knows cut's digest for its own.
	deadline := time.Now().Add(3 * time.Second)
	for !holdsSame(other, cut.name) {
		if time.Now().After(deadline) {
			t.Fatal("anti-entropy did not confirm the cut member's vector within 3s")
		}
		time.Sleep(10 * time.Millisecond)
	}

	faults.Partition([]string{origin.Addr(), other.Addr()}, []string{cut.Addr()})
	origin.exec(t, `INSERT INTO backends (id, app, wg_ip, port) VALUES ('lost','app','10.0.0.2',80)`)
	converge(t, nodes[:2], 2*time.Second)
	if !holdsSame(other, cut.name) {
		t.Fatal("other did not take the cut member along when it merged the push")
	}
	deadline = time.Now().Add(5 * time.Second)
	for stateOf(other, cut.name) != memberlist.StateDead || stateOf(cut, other.name) != memberlist.StateDead {
		if time.Now().After(deadline) {
			t.Fatal("the cut member was not declared dead within 5s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The origin would repair the member that sent no acknowledgement;
	// without it, only the two that took each other for up to date are
	// left.
	origin.Kill()
	faults.Heal()
	d := converge(t, []*tnode{other, cut}, 5*time.Second)
	if !strings.Contains(cut.dump(), "lost") {
		t.Fatalf("the cut member lacks the change:\n%s", cut.dump())
	}
	t.Logf("repaired %v after the heal", d)
}

// After a cut, a member tries at most deadFanout of the members it
// believes dead in a rejoin round, at random, and every one of them over
// a few rounds.
func TestRejoinTriesAFewDeadMembersARound(t *testing.T) {
	faults := NewFaults(4)
	nodes := startCluster(t, 6, faults, nil)
	alone := nodes[0]
	var rest []string
	for _, nd := range nodes[1:] {
		rest = append(rest, nd.Addr())
	}
	faults.Partition([]string{alone.Addr()}, rest)
	// memberlist probes one member at a time: the last is declared dead
	// some 5 s into the cut.
	deadline := time.Now().Add(15 * time.Second)
	for {
		dead := 0
		for _, nd := range nodes[1:] {
			if stateOf(alone, nd.name) == memberlist.StateDead {
				dead++
			}
		}
		if dead == len(nodes)-1 {
			break
		}
		if time.Now().After(deadline) {
			var states []string
			for _, nd := range nodes[1:] {
				states = append(states, nd.name+":"+stateName(stateOf(alone, nd.name)))
			}
			t.Fatalf("%d of %d cut members declared dead within 15s: %v", dead, len(nodes)-1, states)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Ten rounds of RejoinInterval; a round marks the members it tries
	// with its own time.
	rounds := map[time.Time]map[string]bool{}
	tried := map[string]bool{}
	for end := time.Now().Add(10 * alone.cfg.RejoinInterval); time.Now().Before(end); {
		alone.mu.Lock()
		for _, p := range alone.known {
			if p.joinAt.IsZero() {
				continue
			}
			if rounds[p.joinAt] == nil {
				rounds[p.joinAt] = map[string]bool{}
			}
			rounds[p.joinAt][p.name] = true
			tried[p.name] = true
		}
		alone.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
	}
	for at, names := range rounds {
		if len(names) > deadFanout {
			t.Fatalf("the round at %v tried %d dead members, at most %d a round: %v", at.Format(time.StampMilli), len(names), deadFanout, names)
		}
	}
	if len(tried) != len(nodes)-1 || len(rounds) < 3 {
		t.Fatalf("%d rounds tried %d of the %d dead members: %v", len(rounds), len(tried), len(nodes)-1, tried)
	}
}

// stateOf is a member's state as nd last heard it.
func stateOf(nd *tnode, name string) memberlist.NodeStateType {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if p := nd.known[name]; p != nil {
		return p.state
	}
	return memberlist.StateAlive
}

// holdsSame tells whether nd takes the member for holding nd's vector.
func holdsSame(nd *tnode, name string) bool {
	_, dig, err := nd.localVector()
	nd.mu.Lock()
	defer nd.mu.Unlock()
	p := nd.known[name]
	return err == nil && p != nil && p.digest == dig
}
