package anycast

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/edgeproxy/edgeproxy/pop"
)

// Source is where the speaker follows the POP's health (pop.POP has it).
type Source interface {
	Signal() pop.Signal
	Watch() (updates <-chan pop.Signal, stop func())
}

// Options are what one configuration's host hands the manager besides the
// Config.
type Options struct {
	Logger *zap.Logger
	// Publish receives the anycast state (PopText) whenever it changes,
	// off the decision loop: it may write to the POP's pops row.
	Publish func(anycast string)
}

// Manager runs the process's one BGP speaker and decides, from the POP's
// signal, what it announces. Apply a new config at every (re)load; Release
// when that config stops.
type Manager struct {
	mu       sync.Mutex
	defaults Defaults
	spk      *speaker
	log      *zapLogger  // GoBGP's logs
	logger   *zap.Logger // the manager's own decisions
	assign   *assigner
	machine  *Machine
	cfg      *Config
	gen      uint64
	opts     Options
	src      Source
	updates  <-chan pop.Signal
	stopSrc  func()
	sig      pop.Signal
	observed time.Time
	running  bool
	kick     chan struct{}
	quit     chan struct{}
	done     chan struct{}
	changed  chan struct{} // closed and replaced after every decision
	stats    struct{ announcements, withdrawals, reloads, unchanged uint64 }
	pub      *publisher
	known    map[string]bool // apps any signal of this process had
	// onDrained is called once the POP is stopping and every prefix is
	// withdrawn: the POP may then close its listeners.
	onDrained    func()
	onDrainedGen uint64
}

var process = NewManager(DefaultConfig())

// Process is the manager of this process: its speaker outlives every
// configuration.
func Process() *Manager { return process }

// NewManager returns an idle manager; the process has one (Process), tests
// make their own.
func NewManager(d Defaults) *Manager {
	return &Manager{defaults: d, machine: NewMachine(), assign: newAssigner(), changed: make(chan struct{}),
		known: map[string]bool{}}
}

// Handle is one applied config; Release it when that config stops.
type Handle struct{ gen uint64 }

// Apply makes cfg the running config as a difference from the previous
// one, following src from now on. Nothing changes when cfg equals the
// running config: no session resets, no update is sent.
func (m *Manager) Apply(ctx context.Context, cfg Config, src Source, opts Options) (Handle, error) {
	if err := cfg.Validate(); err != nil {
		return Handle{}, err
	}
	if err := checkInterfaces(&cfg); err != nil {
		return Handle{}, err
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.log == nil {
		m.log = newZapLogger(opts.Logger)
	}
	prevGoBGP, prevLogger := m.log.target.Load(), m.logger
	m.log.target.Store(opts.Logger.Named("gobgp"))
	m.logger = opts.Logger
	if m.spk == nil {
		m.spk = newSpeaker(m.log)
	}
	m.stats.reloads++
	if m.cfg != nil && m.running && reflect.DeepEqual(*m.cfg, cfg) {
		m.stats.unchanged++
	}
	err := m.spk.applyGlobal(ctx, &cfg)
	if err == nil {
		err = m.spk.applyPeers(ctx, cfg.Peers)
	}
	if err == nil {
		err = m.assign.apply(wantedAssignments(&cfg))
	}
	if err != nil {
		// The host keeps running the previous config (Caddy does when a
		// new one fails to start): put the speaker back the way it was.
		m.log.target.Store(prevGoBGP)
		if prevLogger != nil {
			m.logger = prevLogger
		}
		if prev := m.cfg; prev != nil && m.running {
			m.spk.applyGlobal(ctx, prev)
			m.spk.applyPeers(ctx, prev.Peers)
			m.assign.apply(wantedAssignments(prev))
			m.syncLocked(ctx)
		} else if !m.running {
			// Nothing ran before: nothing runs now.
			m.spk.stop(ctx)
			m.assign.apply(nil)
		}
		return Handle{}, err
	}
	m.cfg = &cfg
	m.gen++
	m.opts = opts
	if m.pub == nil {
		m.pub = newPublisher()
	}
	m.pub.setTarget(opts.Publish)
	if src != m.src {
		if m.stopSrc != nil {
			m.stopSrc()
		}
		m.src = src
		sig := src.Signal()
		m.learn(pop.Signal{}, sig)
		m.sig = sig
		m.updates, m.stopSrc = src.Watch()
	}
	now := time.Now()
	m.machine.Configure(now, m.cfg)
	m.machine.Observe(now, m.sig)
	m.observed = now
	if err := m.syncLocked(ctx); err != nil {
		m.logger.Error("applying announcements", zap.Error(err))
	}
	if !m.running {
		m.running = true
		m.kick = make(chan struct{}, 1)
		m.quit = make(chan struct{})
		m.done = make(chan struct{})
		go m.loop(m.quit, m.done)
	} else {
		select {
		case m.kick <- struct{}{}:
		default:
		}
	}
	return Handle{gen: m.gen}, nil
}

// Release ends h's config. A newer config applied since (a reload) keeps
// everything running; otherwise (the app was removed from the config)
// every prefix is withdrawn, the addresses removed and the sessions closed.
func (m *Manager) Release(ctx context.Context, h Handle) {
	m.mu.Lock()
	if h.gen != m.gen || !m.running {
		m.mu.Unlock()
		return
	}
	m.mu.Unlock()
	m.Shutdown(ctx)
}

// Current reports whether h is the config running now.
func (m *Manager) Current(h Handle) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.running && h.gen == m.gen
}

// shutdownLinger is how long Shutdown waits between withdrawing and
// closing the sessions.
const shutdownLinger = 500 * time.Millisecond

// Shutdown withdraws every prefix, removes the assigned addresses and
// closes every session (a Cease to each peer). The speaker's server loop
// stays for a later Apply.
func (m *Manager) Shutdown(ctx context.Context) {
	m.mu.Lock()
	if !m.running {
		m.mu.Unlock()
		return
	}
	close(m.quit)
	done := m.done
	m.running = false
	m.mu.Unlock()
	<-done

	m.mu.Lock()
	defer m.mu.Unlock()
	for p := range m.spk.paths {
		if ok, err := m.spk.withdraw(ctx, p); err != nil {
			m.logger.Error("withdrawing on shutdown", zap.Error(err))
		} else if ok {
			m.stats.withdrawals++
		}
	}
	if err := m.assign.apply(nil); err != nil {
		m.logger.Error("removing anycast addresses", zap.Error(err))
	}
	if wait := shutdownLinger - time.Since(m.spk.withdrawnAt); wait > 0 {
		// GoBGP queues withdrawals, and its send loop may take a
		// session's Cease before the queued updates: give them time to
		// leave (here or at the end of a drain just before), so peers
		// see the routes withdrawn, not lost with the session.
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
	m.spk.stop(ctx)
	if m.stopSrc != nil {
		m.stopSrc()
	}
	m.src, m.updates, m.stopSrc = nil, nil, nil
	m.cfg = nil
	m.machine = NewMachine()
	// The POP's row says it announces nothing. The target stays: a later
	// Apply replaces it.
	m.pub.publish("")
	m.notifyLocked()
}

// WaitWithdrawn waits until no prefix is announced or draining (a drain
// ran its course), or ctx ends.
func (m *Manager) WaitWithdrawn(ctx context.Context) error {
	for {
		m.mu.Lock()
		done := m.machine.AllWithdrawn()
		ch := m.changed
		m.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// StopWait is how long a stopping process waits for the drain of cfg.
func (m *Manager) StopWait(cfg *Config) time.Duration {
	return cfg.Drain.Wait + m.defaults.StopGrace
}

func (m *Manager) loop(quit, done chan struct{}) {
	defer close(done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	ctx := context.Background()
	for {
		m.mu.Lock()
		updates := m.updates
		wake := m.observed.Add(m.defaults.Observe)
		if next := m.machine.Next(); !next.IsZero() && next.Before(wake) {
			wake = next
		}
		m.mu.Unlock()
		timer.Reset(max(time.Until(wake), time.Millisecond))
		select {
		case <-quit:
			return
		case <-m.kick:
			continue
		case sig, ok := <-updates:
			m.mu.Lock()
			if m.updates == updates {
				now := time.Now()
				if ok {
					m.learn(m.sig, sig)
					m.sig = sig
					m.machine.Observe(now, sig)
					m.observed = now
				} else {
					// The POP's signal ended: it is stopping.
					m.machine.SourceClosed(now)
					m.updates = nil
				}
				m.stepLocked(ctx)
			}
			m.mu.Unlock()
		case <-timer.C:
			m.mu.Lock()
			now := time.Now()
			if !now.Before(m.observed.Add(m.defaults.Observe)) {
				m.machine.Observe(now, m.sig)
				m.observed = now
			} else {
				m.machine.Advance(now)
			}
			m.stepLocked(ctx)
			m.mu.Unlock()
		}
	}
}

func (m *Manager) stepLocked(ctx context.Context) {
	if err := m.syncLocked(ctx); err != nil {
		m.logger.Error("applying announcements", zap.Error(err))
	}
}

// syncLocked makes the RIB match the machine's decisions.
func (m *Manager) syncLocked(ctx context.Context) error {
	var errs []error
	states := m.machine.States()
	keep := map[netip.Prefix]bool{}
	for _, s := range states {
		keep[s.Prefix] = true
		var sent bool
		var err error
		switch s.Phase {
		case Announced, Draining:
			sent, err = m.spk.announce(ctx, s.Prefix, m.cfg.ASN, m.machine.Spec(s.Prefix), &m.cfg.Drain, s.Phase == Draining)
			if sent {
				m.stats.announcements++
				m.logger.Info("announced", zap.Stringer("prefix", s.Prefix), zap.String("state", string(s.Phase)), zap.String("reason", s.Reason))
			}
		case Withdrawn:
			sent, err = m.spk.withdraw(ctx, s.Prefix)
			if sent {
				m.stats.withdrawals++
				m.logger.Info("withdrawn", zap.Stringer("prefix", s.Prefix), zap.String("reason", s.Reason))
			}
		}
		errs = append(errs, err)
	}
	for p := range m.spk.paths {
		if keep[p] {
			continue
		}
		sent, err := m.spk.withdraw(ctx, p)
		if sent {
			m.stats.withdrawals++
			m.logger.Info("withdrawn", zap.Stringer("prefix", p), zap.String("reason", "no longer configured"))
		}
		errs = append(errs, err)
	}
	m.pub.publish(PopText(states))
	m.checkDrainedLocked()
	m.notifyLocked()
	return errors.Join(errs...)
}

// learn notes the apps of sig that prev, the signal before it, did not
// have: what changed, not every app at every signal.
func (m *Manager) learn(prev, sig pop.Signal) {
	sig.Apps.EditedSince(prev.Apps, func(app string) {
		if _, ok := sig.Apps.Get(app); ok {
			m.known[app] = true
		}
	})
}

// KnownApps lists the apps any POP signal of this process had: a condition
// on one of them is not a config error even if the table lost it since.
func (m *Manager) KnownApps() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.known))
	for n := range m.known {
		out = append(out, n)
	}
	return out
}

// OnDrained calls f once when h's config is running, the POP is stopping
// and every prefix is withdrawn.
func (m *Manager) OnDrained(h Handle, f func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if h.gen != m.gen {
		return
	}
	m.onDrained, m.onDrainedGen = f, h.gen
	m.checkDrainedLocked()
}

func (m *Manager) checkDrainedLocked() {
	if m.onDrained == nil || m.onDrainedGen != m.gen || !m.machine.Stopping() || !m.machine.AllWithdrawn() {
		return
	}
	f := m.onDrained
	m.onDrained = nil
	go f()
}

func (m *Manager) notifyLocked() {
	close(m.changed)
	m.changed = make(chan struct{})
}

// Status reports the speaker, its peers and every prefix.
func (m *Manager) Status(ctx context.Context) Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := Status{Running: m.running, Listen: "off", Peers: []PeerStatus{}, Prefixes: []PrefixStatus{},
		Announcements: m.stats.announcements, Withdrawals: m.stats.withdrawals,
		Reloads: m.stats.reloads, Unchanged: m.stats.unchanged}
	if m.cfg == nil {
		return st
	}
	c := m.cfg
	st.ASN, st.RouterID = c.ASN, c.RouterID.String()
	if c.ListenPort != 0 {
		st.Listen = fmt.Sprintf("%v port %d", c.ListenAddrs, c.ListenPort)
	}
	st.POP = PopState{State: string(m.sig.State), Reason: m.sig.StateReason, Stale: m.sig.Stale, Seq: m.sig.Seq}
	now := time.Now()
	for _, ps := range m.spk.peerStatus(ctx) {
		if !ps.Up.IsZero() {
			ps.Uptime = now.Sub(ps.Up).Seconds()
		}
		st.Peers = append(st.Peers, ps)
	}
	states := m.machine.States()
	st.Anycast = PopText(states)
	for _, s := range states {
		a := m.machine.Spec(s.Prefix)
		at, comms, large := attrsFor(a, &c.Drain, s.Phase == Draining)
		ps := PrefixStatus{PrefixState: s, Interface: a.Assign, When: a.When, Min: a.Min, NextHop: "self", Prepend: at.prepend,
			SinceSeconds: now.Sub(s.Since).Seconds()}
		for _, p := range a.Prefixes {
			if p.Masked() == s.Prefix {
				ps.Address = p.Addr().String()
			}
		}
		if at.nextHop.IsValid() {
			ps.NextHop = at.nextHop.String()
		}
		if at.hasMED {
			med := at.med
			ps.MED = &med
		}
		for _, x := range comms {
			ps.Communities = append(ps.Communities, x.String())
		}
		for _, x := range large {
			ps.LargeCommunities = append(ps.LargeCommunities, x.String())
		}
		st.Prefixes = append(st.Prefixes, ps)
	}
	return st
}

// publisher hands the newest anycast text to the host off the decision
// loop, dropping texts a newer one replaced before it was written.
type publisher struct {
	mu     sync.Mutex
	target func(string)
	last   string
	ch     chan string
}

func newPublisher() *publisher {
	p := &publisher{ch: make(chan string, 1), last: "\x00"}
	go p.run()
	return p
}

func (p *publisher) setTarget(f func(string)) {
	p.mu.Lock()
	p.target = f
	p.last = "\x00" // a new target is told the current text
	p.mu.Unlock()
}

func (p *publisher) publish(s string) {
	p.mu.Lock()
	if s == p.last || p.target == nil {
		p.mu.Unlock()
		return
	}
	p.last = s
	p.mu.Unlock()
	for {
		select {
		case p.ch <- s:
			return
		default:
			select {
			case <-p.ch:
			default:
			}
		}
	}
}

func (p *publisher) run() {
	for s := range p.ch {
		p.mu.Lock()
		f := p.target
		p.mu.Unlock()
		if f != nil {
			f(s)
		}
	}
}
