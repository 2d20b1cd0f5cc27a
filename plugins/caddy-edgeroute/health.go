package edgeroute

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/edgeproxy/edgeproxy/discovery"
	"github.com/edgeproxy/edgeproxy/health"
	"github.com/edgeproxy/edgeproxy/routing"
	"github.com/edgeproxy/edgeproxy/store"
)

// How often the health manager looks at the table (new backends to check,
// ejections to start or end) and removes backends whose heartbeat expired.
const (
	healthTick      = 100 * time.Millisecond
	expiryTick      = 250 * time.Millisecond
	healthFlushTick = 200 * time.Millisecond
	// healthRefresh rewrites every checked backend's health row this often
	// even without a state change, so rtt_us and checked_at stay current
	// without a write per check.
	healthRefresh = 30 * time.Second
)

// healthManager applies one config's health settings to the routing table
// of its App: one active-check monitor per app with a `health` block,
// passive ejection for every app, heartbeat expiry, and the health rows
// this POP owns.
type healthManager struct {
	a        *App
	monitors map[string]*health.Monitor // by app
	outliers map[string]*health.Outliers
	defaultO *health.Outliers // apps without a health block

	ejections atomic.Uint64
	expired   atomic.Uint64

	mu      sync.Mutex
	pending map[string]store.HealthRow
	gone    []string

	cancel context.CancelFunc
	done   chan struct{}
}

func newHealthManager(a *App) *healthManager {
	m := &healthManager{a: a, monitors: map[string]*health.Monitor{}, outliers: map[string]*health.Outliers{},
		defaultO: health.NewOutliers(health.OutlierConfig{}), pending: map[string]store.HealthRow{}}
	for app, hc := range a.Health {
		app := app
		m.monitors[app] = health.NewMonitor(hc.monitorConfig(), func(st health.Status, changed bool) {
			m.checked(app, st, changed)
		})
		if hc.EjectAfter >= 0 {
			m.outliers[app] = health.NewOutliers(hc.outlierConfig())
		} else {
			m.outliers[app] = nil
		}
	}
	return m
}

// scorerFor is the scorer of one app: its connections and its explanations.
func (a *App) scorerFor(app string) routing.Scorer {
	s := a.scorer
	if hc := a.Health[app]; hc != nil && hc.PreferRTT {
		s.PreferRTT = true
	}
	return s
}

func (m *healthManager) logger() *zap.Logger { return m.a.logger }

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
		discovery.RunExpiry(ctx, m.a.rt.store, expiryTick,
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
	t := time.NewTicker(healthTick)
	defer t.Stop()
	var gen uint64
	for {
		tbl := m.a.Table()
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
// health block in a reload).
func (m *healthManager) sync(tbl *routing.Table) {
	targets := map[string][]health.Target{}
	for _, b := range tbl.Backends() {
		mon := m.monitors[b.App]
		if mon == nil || !b.Healthy || b.Deleted || !b.Addr.IsValid() {
			if b.Load.DownReasons()&routing.DownActive != 0 {
				b.Load.SetDown(routing.DownActive, false)
			}
			continue
		}
		targets[b.App] = append(targets[b.App], health.Target{ID: b.ID, Addr: b.Addr,
			Down: b.Load.DownReasons()&routing.DownActive != 0})
	}
	for app, mon := range m.monitors {
		before := mon.Statuses()
		mon.Sync(targets[app])
		keep := map[string]bool{}
		for _, t := range targets[app] {
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
	for _, o := range m.outliers {
		if o != nil {
			o.Forget(func(id string) bool { return tbl.Backend(id) != nil })
		}
	}
	m.defaultO.Forget(func(id string) bool { return tbl.Backend(id) != nil })
}

// checked applies one active check result.
func (m *healthManager) checked(app string, st health.Status, changed bool) {
	b := m.a.Table().Backend(st.ID)
	if b == nil {
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
// keep in each backend's Load.
func (m *healthManager) passive(tbl *routing.Table, now time.Time) {
	for _, b := range tbl.Backends() {
		fails := b.Load.ConsecutiveFailures()
		ejected := b.Load.DownReasons()&routing.DownEjected != 0
		if fails == 0 && !ejected {
			continue
		}
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
			continue
		}
		action, until := o.Observe(b.ID, fails, othersRoutable(tbl, b), now)
		switch action {
		case health.Eject:
			b.Load.SetDown(routing.DownEjected, true)
			m.ejections.Add(1)
			m.logger().Warn("backend ejected after repeated connection failures",
				zap.String("app", b.App), zap.String("backend", b.ID), zap.Stringer("addr", b.Addr),
				zap.Uint32("consecutive_failures", fails), zap.Duration("for", until.Sub(now)))
		case health.Readmit:
			b.Load.ResetFailures()
			b.Load.SetDown(routing.DownEjected, false)
			m.logger().Info("ejection over: backend back in rotation",
				zap.String("app", b.App), zap.String("backend", b.ID))
		}
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
	t := time.NewTicker(healthFlushTick)
	defer t.Stop()
	lastRefresh := time.Now()
	for {
		select {
		case <-ctx.Done():
			m.flush(context.Background())
			return
		case <-t.C:
		}
		if time.Since(lastRefresh) >= healthRefresh {
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
	if err := m.a.rt.store.WriteHealth(ctx, m.a.Node, rows, gone); err != nil && ctx.Err() == nil {
		m.logger().Error("writing this POP's health rows", zap.Error(err))
	}
}

// AppHealthView is one app in GET /edgeroute/health.
type AppHealthView struct {
	App       string              `json:"app"`
	Check     string              `json:"check,omitempty"`
	Interval  string              `json:"interval,omitempty"`
	Timeout   string              `json:"timeout,omitempty"`
	Rise      int                 `json:"rise,omitempty"`
	Fall      int                 `json:"fall,omitempty"`
	PreferRTT bool                `json:"prefer_rtt"`
	Backends  []BackendHealthView `json:"backends"`
}

// BackendHealthView is one backend's health as this POP sees it.
type BackendHealthView struct {
	ID       string  `json:"id"`
	Addr     string  `json:"addr"`
	Routable bool    `json:"routable"`
	Checked  bool    `json:"checked"`
	Healthy  bool    `json:"healthy"` // active verdict (true when unchecked)
	RTTMs    float64 `json:"rtt_ms"`
	LastRTT  float64 `json:"last_rtt_ms"`
	Checks   uint64  `json:"checks"`
	Failures uint64  `json:"failures"`
	Streak   int     `json:"streak"`
	// LastError of the last failed check, when the last check failed.
	LastError           string              `json:"last_error,omitempty"`
	LastCheck           *time.Time          `json:"last_check,omitempty"`
	ConsecutiveFailures uint32              `json:"consecutive_connection_failures"`
	Ejection            health.EjectionInfo `json:"ejection"`
}

// HealthView is the body of GET /edgeroute/health.
type HealthView struct {
	Node              string          `json:"node"`
	Ejections         uint64          `json:"ejections_total"`
	HeartbeatsExpired uint64          `json:"heartbeat_expirations_total"`
	Apps              []AppHealthView `json:"apps"`
}

func (m *healthManager) view(onlyApp string) HealthView {
	v := HealthView{Node: m.a.Node, Ejections: m.ejections.Load(), HeartbeatsExpired: m.expired.Load(), Apps: []AppHealthView{}}
	tbl := m.a.Table()
	for _, app := range tbl.Apps() {
		if onlyApp != "" && app != onlyApp {
			continue
		}
		av := AppHealthView{App: app, Backends: []BackendHealthView{}}
		statuses := map[string]health.Status{}
		if hc := m.a.Health[app]; hc != nil {
			mon := m.monitors[app]
			av.Check, av.Interval, av.Timeout = hc.checker.String(), time.Duration(hc.Interval).String(), time.Duration(hc.Timeout).String()
			av.Rise, av.Fall, av.PreferRTT = hc.Rise, hc.Fall, hc.PreferRTT
			for _, st := range mon.Statuses() {
				statuses[st.ID] = st
			}
		}
		o, configured := m.outliers[app]
		if !configured {
			o = m.defaultO
		}
		for _, b := range tbl.App(app) {
			bv := BackendHealthView{ID: b.ID, Addr: b.Addr.String(), Routable: b.Routable(), Healthy: true,
				ConsecutiveFailures: b.Load.ConsecutiveFailures()}
			if st, ok := statuses[b.ID]; ok {
				bv.Checked, bv.Healthy = true, st.Healthy
				bv.RTTMs, bv.LastRTT = ms(st.RTT), ms(st.LastRTT)
				bv.Checks, bv.Failures, bv.Streak, bv.LastError = st.Checks, st.Failures, st.Streak, st.LastError
				if !st.LastCheck.IsZero() {
					lc := st.LastCheck
					bv.LastCheck = &lc
				}
			}
			if o != nil {
				bv.Ejection = o.Info(b.ID)
			}
			av.Backends = append(av.Backends, bv)
		}
		v.Apps = append(v.Apps, av)
	}
	return v
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func zapBackend(id string) zap.Field { return zap.String("backend", id) }
