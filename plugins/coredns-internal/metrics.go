package internal

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/coredns/coredns/plugin"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/edgeproxy/edgeproxy/store"
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

// instances are read when scraped, from the running instances: the age of
// their snapshots (a gauge set at load time would not grow while the table
// is quiet or unreadable) and how their watchers read the table. The counts
// of an instance a reload replaced are kept, so the counters only grow.
var instances = &instanceCollector{
	age: prometheus.NewDesc(prometheus.BuildFQName(plugin.Namespace, "internal", "snapshot_age_seconds"),
		"Seconds since the snapshot being served was read from the routing table.", []string{"db"}, nil),
	snapshots: prometheus.NewDesc(prometheus.BuildFQName(plugin.Namespace, "internal", "snapshots_total"),
		"Counter of snapshots read from the routing table; read is changes (only the rows the change journal named) or whole (the whole table).", []string{"db", "read"}, nil),
	seconds: prometheus.NewDesc(prometheus.BuildFQName(plugin.Namespace, "internal", "snapshot_read_seconds_total"),
		"Counter of seconds spent reading snapshots from the routing table, by how they were read.", []string{"db", "read"}, nil),
	rows: prometheus.NewDesc(prometheus.BuildFQName(plugin.Namespace, "internal", "snapshot_rows_total"),
		"Counter of backend and health rows read by snapshots that followed the change journal.", []string{"db"}, nil),
	looks: prometheus.NewDesc(prometheus.BuildFQName(plugin.Namespace, "internal", "table_looks_total"),
		"Counter of the watchers' own looks at the routing table file for commits: one a second (the safety poll), and one per commit of any kind where the commit watch does not run.", []string{"db"}, nil),
	live:    map[*Internal]bool{},
	retired: map[string]readCounts{},
}

func init() { prometheus.MustRegister(instances) }

type instanceCollector struct {
	age, snapshots, seconds, rows, looks *prometheus.Desc

	mu      sync.Mutex
	live    map[*Internal]bool
	retired map[string]readCounts // by db
}

// readCounts are a watcher's counts (store.WatchStats), summed over the
// instances reading one file.
type readCounts struct {
	reads [2]store.WatchRead
	rows  uint64
	looks uint64
}

func (c readCounts) add(st *store.WatchStats) readCounts {
	for i, r := range st.Reads() {
		c.reads[i].Read = r.Read
		c.reads[i].Snapshots += r.Snapshots
		c.reads[i].Seconds += r.Seconds
	}
	c.rows += st.FollowedRows.Load()
	c.looks += st.Looks.Load()
	return c
}

func register(in *Internal) {
	instances.mu.Lock()
	instances.live[in] = true
	instances.mu.Unlock()
}

// unregister is called once the instance's watcher has stopped.
func unregister(in *Internal) {
	instances.mu.Lock()
	if instances.live[in] {
		instances.retired[in.db] = instances.retired[in.db].add(&in.stats)
		delete(instances.live, in)
	}
	instances.mu.Unlock()
}

func (c *instanceCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.age
	ch <- c.snapshots
	ch <- c.seconds
	ch <- c.rows
	ch <- c.looks
}

func (c *instanceCollector) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	ages := map[string]float64{}
	counts := map[string]readCounts{}
	c.mu.Lock()
	for db, n := range c.retired {
		counts[db] = n
	}
	for in := range c.live {
		counts[in.db] = counts[in.db].add(&in.stats)
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
		ch <- prometheus.MustNewConstMetric(c.age, prometheus.GaugeValue, age, db)
	}
	for db, n := range counts {
		for _, r := range n.reads {
			ch <- prometheus.MustNewConstMetric(c.snapshots, prometheus.CounterValue, float64(r.Snapshots), db, r.Read)
			ch <- prometheus.MustNewConstMetric(c.seconds, prometheus.CounterValue, r.Seconds, db, r.Read)
		}
		ch <- prometheus.MustNewConstMetric(c.rows, prometheus.CounterValue, float64(n.rows), db)
		ch <- prometheus.MustNewConstMetric(c.looks, prometheus.CounterValue, float64(n.looks), db)
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
