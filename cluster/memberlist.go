package cluster

import (
	"bufio"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"
)

// delegate receives memberlist's user messages and gives this node's
// metadata: its site id, then, on a bridge's node in its region, a line
// saying so (its region's POPs then wait for the bridges' floors before
// they forget a tombstone).
type delegate Node

func (d *delegate) NodeMeta(limit int) []byte {
	if d.sibling.Load() != nil && !d.secondary.Load() {
		return []byte(d.st.SiteID() + "\n" + metaBridge)
	}
	return []byte(d.st.SiteID())
}

const metaBridge = "bridge"

func (d *delegate) NotifyMsg(b []byte) {
	n := (*Node)(d)
	n.Stats.BytesRecv.Add(uint64(len(b)))
	if len(b) > n.cfg.MaxMessage {
		n.Stats.MessagesRefused.Add(1)
		n.log.Warn("cluster: message refused: too large", "bytes", len(b), "max", n.cfg.MaxMessage)
		return
	}
	if len(b) >= 4 && b[3] == msgLeave {
		// A goodbye is marked at once, not behind merges in the inbox:
		// memberlist reports the member's departure right after it, and
		// must find it marked to tell a leave from a failure.
		n.receive(b)
		return
	}
	select {
	case n.inbox <- append([]byte(nil), b...):
	default:
		// Anti-entropy brings whatever this loses.
		n.Stats.MessagesRefused.Add(1)
	}
}

func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *delegate) LocalState(join bool) []byte                { return nil }
func (d *delegate) MergeRemoteState(buf []byte, join bool)     {}

// events follows membership changes.
type events Node

// update records a member's state. memberlist never fills Node.State (it
// keeps the state in its private nodeState), so the state comes from the
// event: join and update mean alive, leave means failed — or left, if the
// member said goodbye first (msgLeave).
func (e *events) update(nd *memberlist.Node, state memberlist.NodeStateType) {
	n := (*Node)(e)
	if nd.Name == n.cfg.Name {
		return
	}
	n.mu.Lock()
	p := n.known[nd.Name]
	if p == nil {
		p = &peer{name: nd.Name, siteID: -1}
		n.known[nd.Name] = p
	}
	if state == memberlist.StateDead && p.leaving {
		state = memberlist.StateLeft
	}
	if state == memberlist.StateAlive {
		p.leaving = false
	}
	if p.state != state || p.since.IsZero() {
		p.since = time.Now()
	}
	if state == memberlist.StateDead {
		// Cut off or down: whatever it held, it missed what was pushed
		// since, though members that merged those pushes took it to
		// hold what they held (acknowledge). Unknown again, it differs,
		// and anti-entropy tries it until it answers.
		p.digest = 0
	}
	site, role, _ := strings.Cut(string(nd.Meta), "\n")
	p.addr, p.site, p.bridge, p.state = nd.Address(), site, role == metaBridge, state
	if p.siteID = -1; site != "" {
		p.siteID = n.sites.id(site)
	}
	cp := *nd
	p.node = &cp
	n.mu.Unlock()
	// A member that comes or comes back may lack what this node has, or
	// have what it lacks.
	n.wakeSync()
}

func (e *events) NotifyJoin(nd *memberlist.Node) {
	e.update(nd, memberlist.StateAlive)
	e.log.Info("cluster: member up", "member", nd.Name, "addr", nd.Address())
}

func (e *events) NotifyLeave(nd *memberlist.Node) {
	if nd.Name == e.cfg.Name {
		return // this node's own Leave; Stop says so
	}
	e.update(nd, memberlist.StateDead)
	how := "failed"
	e.mu.Lock()
	if p := e.known[nd.Name]; p != nil && p.state == memberlist.StateLeft {
		how = "left"
	}
	e.mu.Unlock()
	e.log.Warn("cluster: member down", "member", nd.Name, "addr", nd.Address(), "how", how)
}

// markLeaving records a member's goodbye. memberlist hands queued messages
// over newest first, so the goodbye may come after the departure it
// announces: a member already down is then taken to have left.
func (n *Node) markLeaving(name string) {
	n.mu.Lock()
	p := n.known[name]
	late := p != nil && p.state == memberlist.StateDead
	if p != nil {
		p.leaving = true
	}
	if late {
		p.state = memberlist.StateLeft
	}
	n.mu.Unlock()
	if late {
		n.log.Info("cluster: member left", "member", name)
	}
}

func (e *events) NotifyUpdate(nd *memberlist.Node) { e.update(nd, memberlist.StateAlive) }

// logWriter turns memberlist's log lines into slog records: [ERR] and [WARN]
// (a packet that fails to decrypt, a wrong label, a bad message) are
// warnings, the rest debug.
type logWriter struct{ log *slog.Logger }

func (w *logWriter) Write(p []byte) (int, error) {
	sc := bufio.NewScanner(strings.NewReader(string(p)))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.Contains(line, "[ERR]"), strings.Contains(line, "[WARN]"):
			w.log.Warn("cluster: " + strings.TrimSpace(line))
		default:
			w.log.Debug("cluster: " + strings.TrimSpace(line))
		}
	}
	return len(p), nil
}

var _ io.Writer = (*logWriter)(nil)

// Interface guards.
var (
	_ memberlist.Delegate      = (*delegate)(nil)
	_ memberlist.EventDelegate = (*events)(nil)
)
