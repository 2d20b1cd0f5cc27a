package pop

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/edgeproxy/edgeproxy/discovery"
	"github.com/edgeproxy/edgeproxy/health"
	"github.com/edgeproxy/edgeproxy/routing"
	"github.com/edgeproxy/edgeproxy/store"
)

// healthManager applies one config's health settings to the routing table:
// one active-check monitor per app with checks, passive ejection for every
// app, heartbeat expiry, and the health rows this POP owns.
type healthManager struct {
	rt       *Runtime
	specs    map[string]HealthSpec
	monitors map[string]*health.Monitor // by app
	outliers map[string]*health.Outliers
	defaultO *health.Outliers // apps without a health block

	ejections atomic.Uint64
	expired   atomic.Uint64

	// The backends with failures or an ejection that the passive checker
	// follows, by ID, and routing.FailureRuns at its last look at every
	// row. Only the watch loop touches them.
	failing     map[string]bool
	failingRuns uint64
	// synced: the table the monitors were last handed their backends
	// from (sync).
	synced *routing.Table

	mu      sync.Mutex
	pending map[string]store.HealthRow
	gone    []string

	cancel context.CancelFunc
	done   chan struct{}
}

func newHealthManager(rt *Runtime, specs map[string]HealthSpec) *healthManager {
	m := &healthManager{rt: rt, specs: specs, monitors: map[string]*health.Monitor{}, outliers: map[string]*health.Outliers{},
		defaultO: health.NewOutliers(health.OutlierConfig{}), pending: map[string]store.HealthRow{}}
	for app, hs := range specs {
		if hs.Monitor != nil {
			m.monitors[app] = health.NewMonitor(*hs.Monitor, func(st health.Status, changed bool) {
				m.checked(app, st, changed)
			})
		}
		if hs.Outliers != nil {
			m.outliers[app] = health.NewOutliers(*hs.Outliers)
		} else {
			m.outliers[app] = nil
		}
	}
	return m
}

// healthFingerprint is what must stay equal for a reload to keep the
// running checks.
func healthFingerprint(specs map[string]HealthSpec) string {
	type shape struct {
		Describe  string
		PreferRTT bool
		Outliers  *health.OutlierConfig
		Checked   bool
		Interval  time.Duration
		Timeout   time.Duration
		Rise      int
		Fall      int
	}
	m := make(map[string]shape, len(specs))
	for app, s := range specs {
		sh := shape{Describe: s.Describe, PreferRTT: s.PreferRTT, Outliers: s.Outliers, Checked: s.Monitor != nil}
		if s.Monitor != nil {
			sh.Interval, sh.Timeout, sh.Rise, sh.Fall = s.Monitor.Interval, s.Monitor.Timeout, s.Monitor.Rise, s.Monitor.Fall
		}
		m[app] = sh
	}
	b, _ := json.Marshal(m) // map keys are sorted
	return string(b)
}

// setHealth replaces the health manager when the config's health settings
// differ from the running ones. Its caller holds applyMu.
func (rt *Runtime) setHealth(specs map[string]HealthSpec) {
	fp := healthFingerprint(specs)
	if cur := rt.health.Load(); cur != nil && rt.healthF == fp {
		return
	}
	next := newHealthManager(rt, specs)
	next.start()
	if old := rt.health.Swap(next); old != nil {
		old.stop()
	}
	rt.healthF = fp
}

// PreferRTT reports whether ties between equally scored backends of app
// are broken by measured round-trip time.
func (rt *Runtime) PreferRTT(app string) bool {
	if m := rt.health.Load(); m != nil {
		return m.specs[app].PreferRTT
	}
	return false
}

func (m *healthManager) logger() *zap.Logger { return m.rt.log() }

func (m *healthManager) start() {
	if m.cancel != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel, m.done = cancel, make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); m.watch(ctx) }()
	go func() { defer wg.Done(); m.flushLoop(ctx) }()
	go func() {
		defer wg.Done()
		discovery.RunExpiry(ctx, m.rt.st, defaults.ExpiryMaxWait,
			func(ids []string) {
				m.expired.Add(uint64(len(ids)))
				m.logger().Info("backends removed: no heartbeat within their TTL", zap.Strings("backends", ids))
			},
			func(err error) { m.logger().Error("expiring heartbeats", zap.Error(err)) })
	}()
	go func() { wg.Wait(); close(m.done) }()
}

func (m *healthManager) stop() {
	if m.cancel == nil {
		return
	}
	m.cancel()
	for _, mon := range m.monitors {
		mon.Stop()
	}
	<-m.done
	m.cancel = nil
}

// watch follows the table: targets for the monitors, passive ejections.
func (m *healthManager) watch(ctx context.Context) {
	t := time.NewTicker(defaults.HealthTick)
	defer t.Stop()
	var gen uint64
	for {
		tbl := m.rt.Table()
		if tbl.Generation != gen {
			gen = tbl.Generation
			m.sync(tbl)
		}
		m.passive(tbl, time.Now())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sync hands each monitor the backends it should check, and clears the
// active-check verdict of backends no monitor checks (their app lost its
// health block in a reload). After the first, it looks only at the apps
// whose list of backends the table changed since the last sync (a derived
// snapshot shares the others' lists): every row at every snapshot would
// be, at a hundred thousand backends, most of the cost of an edit.
func (m *healthManager) sync(tbl *routing.Table) {
	prev := m.synced
	m.synced = tbl
	for _, app := range tbl.AppsEditedSince(prev) {
		mon := m.monitors[app]
		if mon == nil {
			var before []*routing.Backend
			if prev != nil {
				before = prev.App(app)
			}
			clearUnchecked(tbl.App(app), before)
			continue
		}
		var targets []health.Target
		for _, b := range tbl.App(app) {
			if !b.TableRoutable() {
				clearActiveVerdict(b)
				continue
			}
			targets = append(targets, health.Target{ID: b.ID, Addr: b.Addr,
				Down: b.Load.DownReasons()&routing.DownActive != 0})
		}
		m.syncMonitor(mon, targets) // none: the app's last backend is gone
	}
	for _, o := range m.outliers {
		if o != nil {
			o.Forget(func(id string) bool { return tbl.Backend(id) != nil })
		}
	}
	m.defaultO.Forget(func(id string) bool { return tbl.Backend(id) != nil })
}

// clearUnchecked clears the active-check verdict of the backends of an app
// no monitor checks, given the app's backends before (nil at the first
// sync, when every verdict may be a monitor's that a reload took away).
// Afterwards only a backend that came into the app can carry one, from
// the checked app it left: a backend the app had before (the same row, at
// the same place) is skipped without a look at its load, which would be a
// cache miss a backend at every edit of a large app.
func clearUnchecked(backends, before []*routing.Backend) {
	for i, b := range backends {
		if i < len(before) && before[i] == b {
			continue
		}
		clearActiveVerdict(b)
	}
}

// clearActiveVerdict takes back an active check's "down" from a backend
// no monitor checks, writing its load only when there is one to take.
func clearActiveVerdict(b *routing.Backend) {
	if b.Load.DownReasons()&routing.DownActive != 0 {
		b.Load.SetDown(routing.DownActive, false)
	}
}

// syncMonitor hands mon its targets, and drops the health rows to write
// of the backends it no longer checks.
func (m *healthManager) syncMonitor(mon *health.Monitor, targets []health.Target) {
	before := mon.Statuses()
	mon.Sync(targets)
	keep := make(map[string]bool, len(targets))
	for _, t := range targets {
		keep[t.ID] = true
	}
	for _, st := range before {
		if !keep[st.ID] {
			m.mu.Lock()
			m.gone = append(m.gone, st.ID)
			delete(m.pending, st.ID)
			m.mu.Unlock()
		}
	}
}

// checked applies one active check result.
func (m *healthManager) checked(app string, st health.Status, changed bool) {
	b := m.rt.Table().Backend(st.ID)
	if b == nil || b.App != app {
		// Gone, or moved to another app since the monitor's last sync:
		// no verdict of this app's checks is the other app's.
		return
	}
	b.Load.SetRTT(st.RTT.Microseconds())
	m.mu.Lock()
	_, queued := m.pending[st.ID]
	row := store.HealthRow{BackendID: st.ID, Healthy: st.Healthy, RTT: st.RTT, CheckedAt: st.LastCheck}
	if changed || queued {
		m.pending[st.ID] = row
	}
	m.mu.Unlock()
	if !changed {
		return
	}
	b.Load.SetDown(routing.DownActive, !st.Healthy)
	m.rt.signal.kick()
	if st.Healthy {
		m.logger().Info("backend passed its health checks: back in rotation",
			zap.String("app", app), zap.String("backend", st.ID), zap.Stringer("addr", st.Addr),
			zap.Duration("rtt", st.RTT))
	} else {
		m.logger().Warn("backend failed its health checks: out of rotation",
			zap.String("app", app), zap.String("backend", st.ID), zap.Stringer("addr", st.Addr),
			zap.String("error", st.LastError))
	}
}

// passive starts and ends ejections from the failure counts connections
// keep in each backend's Load. It runs every HealthTick: it looks at every
// row of the table only when a run of failures began somewhere since its
// last look (at a hundred thousand backends, a look at every row ten times
// a second would be most of an idle POP's CPU), and otherwise at the
// backends it found failing or ejected.
func (m *healthManager) passive(tbl *routing.Table, now time.Time) {
	if runs := routing.FailureRuns(); m.failing == nil || runs != m.failingRuns {
		// Read before the rows: a run that begins during the look is
		// either seen or moves the count for the next one.
		m.failingRuns = runs
		if m.failing == nil {
			m.failing = map[string]bool{}
		}
		for b := range tbl.Rows().All() {
			if troubled(b) {
				m.failing[b.ID] = true
			}
		}
	}
	for id := range m.failing {
		b := tbl.Backend(id)
		if b == nil || !troubled(b) {
			delete(m.failing, id)
			continue
		}
		m.observe(tbl, b, now)
	}
}

// troubled: the backend has consecutive failures or is ejected.
func troubled(b *routing.Backend) bool {
	return b.Load.ConsecutiveFailures() != 0 || b.Load.DownReasons()&routing.DownEjected != 0
}

// observe applies the outlier detection of b's app to b's failures.
func (m *healthManager) observe(tbl *routing.Table, b *routing.Backend, now time.Time) {
	fails := b.Load.ConsecutiveFailures()
	ejected := b.Load.DownReasons()&routing.DownEjected != 0
	o, configured := m.outliers[b.App]
	if !configured {
		o = m.defaultO
	}
	if o == nil || (ejected && !o.Info(b.ID).Ejected) {
		// Ejection off, or ejected under an earlier config whose
		// schedule is gone: readmit.
		if ejected {
			b.Load.SetDown(routing.DownEjected, false)
			b.Load.ResetFailures()
		}
		return
	}
	action, until := o.Observe(b.ID, fails, othersRoutable(tbl, b), now)
	switch action {
	case health.Eject:
		b.Load.SetDown(routing.DownEjected, true)
		m.rt.signal.kick()
		m.ejections.Add(1)
		m.logger().Warn("backend ejected after repeated connection failures",
			zap.String("app", b.App), zap.String("backend", b.ID), zap.Stringer("addr", b.Addr),
			zap.Uint32("consecutive_failures", fails), zap.Duration("for", until.Sub(now)))
	case health.Readmit:
		b.Load.ResetFailures()
		b.Load.SetDown(routing.DownEjected, false)
		m.rt.signal.kick()
		m.logger().Info("ejection over: backend back in rotation",
			zap.String("app", b.App), zap.String("backend", b.ID))
	}
}

// othersRoutable reports whether b's app keeps a routable backend without
// b: passive ejection never empties an app.
func othersRoutable(tbl *routing.Table, b *routing.Backend) bool {
	for _, o := range tbl.App(b.App) {
		if o != b && o.Routable() {
			return true
		}
	}
	return false
}

// flushLoop writes queued health rows, and refreshes every checked row
// periodically, in one transaction per tick.
func (m *healthManager) flushLoop(ctx context.Context) {
	t := time.NewTicker(defaults.HealthFlush)
	defer t.Stop()
	lastRefresh := time.Now()
	for {
		select {
		case <-ctx.Done():
			m.flush(context.Background())
			return
		case <-t.C:
		}
		if time.Since(lastRefresh) >= defaults.HealthRefresh {
			lastRefresh = time.Now()
			m.mu.Lock()
			for _, mon := range m.monitors {
				for _, st := range mon.Statuses() {
					if !st.LastCheck.IsZero() {
						m.pending[st.ID] = store.HealthRow{BackendID: st.ID, Healthy: st.Healthy, RTT: st.RTT, CheckedAt: st.LastCheck}
					}
				}
			}
			m.mu.Unlock()
		}
		m.flush(ctx)
	}
}

func (m *healthManager) flush(ctx context.Context) {
	m.mu.Lock()
	if len(m.pending) == 0 && len(m.gone) == 0 {
		m.mu.Unlock()
		return
	}
	rows := make([]store.HealthRow, 0, len(m.pending))
	for _, r := range m.pending {
		rows = append(rows, r)
	}
	gone := m.gone
	m.pending, m.gone = map[string]store.HealthRow{}, nil
	m.mu.Unlock()
	if err := m.rt.st.WriteHealth(ctx, m.rt.Identity().Node, rows, gone); err != nil && ctx.Err() == nil {
		m.logger().Error("writing this POP's health rows", zap.Error(err))
	}
}
