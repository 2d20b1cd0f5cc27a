package internal

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/coredns/coredns/plugin"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	// recordsServed counts answer records, by server and kind of name.
	recordsServed = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace,
		Subsystem: "internal",
		Name:      "records_served_total",
		Help:      "Counter of answer records served, by server and kind of name.",
	}, []string{"server", "kind"})
	// reloadErrors counts failures to load a new snapshot.
	reloadErrors = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace,
		Subsystem: "internal",
		Name:      "reload_errors_total",
		Help:      "Counter of failures to read the routing table; a failure that lasts is counted once.",
	}, []string{"db"})
	// snapshotSerial is the SOA serial in use.
	snapshotSerial = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: plugin.Namespace,
		Subsystem: "internal",
		Name:      "snapshot_serial",
		Help:      "SOA serial (routing table generation) of the snapshot being served.",
	}, []string{"db"})
)

// snapshotAge is computed when scraped, from the snapshots of the running
// instances: a gauge set at load time would not grow while the table is
// quiet or unreadable.
var snapshotAge = &ageCollector{
	desc: prometheus.NewDesc(prometheus.BuildFQName(plugin.Namespace, "internal", "snapshot_age_seconds"),
		"Seconds since the snapshot being served was read from the routing table.", []string{"db"}, nil),
	live: map[*Internal]bool{},
}

func init() { prometheus.MustRegister(snapshotAge) }

type ageCollector struct {
	desc *prometheus.Desc
	mu   sync.Mutex
	live map[*Internal]bool
}

func register(in *Internal) {
	snapshotAge.mu.Lock()
	snapshotAge.live[in] = true
	snapshotAge.mu.Unlock()
}

func unregister(in *Internal) {
	snapshotAge.mu.Lock()
	delete(snapshotAge.live, in)
	snapshotAge.mu.Unlock()
}

func (c *ageCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *ageCollector) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	ages := map[string]float64{}
	c.mu.Lock()
	for in := range c.live {
		s := in.snap.Load()
		if s == nil {
			continue
		}
		// Two server blocks reading one file report the older snapshot.
		if age := now.Sub(s.loadedAt).Seconds(); age > ages[in.db] {
			ages[in.db] = age
		}
	}
	c.mu.Unlock()
	for db, age := range ages {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, age, db)
	}
}

// served caches the records-served counters of each server, so a query
// finds its counter with a map read instead of WithLabelValues, which hashes
// and allocates. The map is copied on write; servers are few.
var served servedCounters

type servedCounters struct {
	mu sync.Mutex
	m  atomic.Pointer[map[string]*[numKinds]prometheus.Counter]
}

func (s *servedCounters) add(server string, k kind, n int) {
	if n == 0 {
		return
	}
	if m := s.m.Load(); m != nil {
		if c := (*m)[server]; c != nil {
			c[k].Add(float64(n))
			return
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	next := map[string]*[numKinds]prometheus.Counter{}
	if m := s.m.Load(); m != nil {
		for k, v := range *m {
			next[k] = v
		}
	}
	c := next[server]
	if c == nil {
		c = new([numKinds]prometheus.Counter)
		for i := range c {
			c[i] = recordsServed.WithLabelValues(server, kind(i).String())
		}
		next[server] = c
		s.m.Store(&next)
	}
	c[k].Add(float64(n))
}
