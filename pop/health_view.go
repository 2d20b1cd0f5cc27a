package pop

import (
	"time"

	"github.com/edgeproxy/edgeproxy/health"
	"github.com/edgeproxy/edgeproxy/routing"
)

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
	// Ejecting is false when passive ejection is off for the app.
	Ejecting bool `json:"-"`
}

// HealthView is the body of GET /edgeroute/health.
type HealthView struct {
	Node              string          `json:"node"`
	Ejections         uint64          `json:"ejections_total"`
	HeartbeatsExpired uint64          `json:"heartbeat_expirations_total"`
	Apps              []AppHealthView `json:"apps"`
}

// HealthView is this POP's health of every app, or of onlyApp.
func (rt *Runtime) HealthView(onlyApp string) HealthView {
	return rt.HealthViewWhere(onlyApp, nil)
}

// HealthViewWhere is HealthView with only the backends keep accepts
// (checked: this POP checks the backend actively), or all where keep is
// nil. A caller that needs few of a large table's backends (the metrics)
// pays for those alone.
func (rt *Runtime) HealthViewWhere(onlyApp string, keep func(b *routing.Backend, checked bool) bool) HealthView {
	m := rt.health.Load()
	if m == nil {
		return HealthView{Node: rt.Identity().Node, Apps: []AppHealthView{}}
	}
	return m.view(onlyApp, keep)
}

func (m *healthManager) view(onlyApp string, keep func(b *routing.Backend, checked bool) bool) HealthView {
	v := HealthView{Node: m.rt.Identity().Node, Ejections: m.ejections.Load(), HeartbeatsExpired: m.expired.Load(), Apps: []AppHealthView{}}
	tbl := m.rt.Table()
	for _, app := range tbl.Apps() {
		if onlyApp != "" && app != onlyApp {
			continue
		}
		av := AppHealthView{App: app, Backends: []BackendHealthView{}}
		statuses := map[string]health.Status{}
		av.PreferRTT = m.specs[app].PreferRTT
		if mon := m.monitors[app]; mon != nil {
			c := mon.Config()
			av.Check, av.Interval, av.Timeout = c.Checker.String(), c.Interval.String(), c.Timeout.String()
			av.Rise, av.Fall = c.Rise, c.Fall
			for _, st := range mon.Statuses() {
				statuses[st.ID] = st
			}
		}
		o, configured := m.outliers[app]
		if !configured {
			o = m.defaultO
		}
		for _, b := range tbl.App(app) {
			st, checked := statuses[b.ID]
			if keep != nil && !keep(b, checked) {
				continue
			}
			bv := BackendHealthView{ID: b.ID, Addr: b.Addr.String(), Routable: b.Routable(), Healthy: true,
				ConsecutiveFailures: b.Load.ConsecutiveFailures()}
			if checked {
				bv.Checked, bv.Healthy = true, st.Healthy
				bv.RTTMs, bv.LastRTT = ms(st.RTT), ms(st.LastRTT)
				bv.Checks, bv.Failures, bv.Streak, bv.LastError = st.Checks, st.Failures, st.Streak, st.LastError
				if !st.LastCheck.IsZero() {
					lc := st.LastCheck
					bv.LastCheck = &lc
				}
			}
			if o != nil {
				bv.Ejection, bv.Ejecting = o.Info(b.ID), true
			}
			av.Backends = append(av.Backends, bv)
		}
		v.Apps = append(v.Apps, av)
	}
	return v
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
