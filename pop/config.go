package pop

import (
	"time"

	"go.uber.org/zap"

	"github.com/edgeproxy/edgeproxy/health"
	"github.com/edgeproxy/edgeproxy/store"
)

// Config is what one configuration asks of the POP's runtime. A new Config
// is applied as a difference: what it leaves unchanged keeps running.
type Config struct {
	Identity Identity
	// Affinity is how long a client keeps its backend while unused; a
	// negative value turns affinity off.
	Affinity time.Duration
	// WatchInterval is the least time between two reloads of the table
	// while commits keep coming (store.Watcher.Interval).
	WatchInterval time.Duration
	// DrainFile, when set, drains the POP while the file exists.
	DrainFile string
	// StopDelay keeps the listeners open this long after the POP moved to
	// Stopping, so routers and load balancers move traffic away first.
	StopDelay time.Duration
	// Cluster replicates the table; nil runs the POP alone.
	Cluster *ClusterConfig
	// Health holds the active checks and ejection policy per app.
	Health map[string]HealthSpec
	// Logger receives what the runtime does.
	Logger *zap.Logger
}

// ClusterConfig is the POP's membership in a cluster of POPs.
type ClusterConfig struct {
	Bind      string
	Advertise string
	Join      []string
	// Keys are raw AES keys; the first encrypts.
	Keys           [][]byte
	Name           string
	SyncInterval   time.Duration
	RejoinInterval time.Duration
	TombstoneAge   time.Duration
	// Profile is memberlist's timing profile, "lan" or "wan" (empty: lan).
	Profile string
	// Bridge, when set, makes this POP one of its region's bridges: a
	// second node, on the same file and keys, in a global cluster of
	// bridges, relaying between the two (cluster.Bridge).
	Bridge *BridgeConfig
}

// BridgeConfig is a bridge's membership in the global cluster.
type BridgeConfig struct {
	Bind      string
	Advertise string
	Join      []string
	Name      string
	Profile   string
}

// HealthSpec configures one app's health: active checks (Monitor nil: none),
// passive ejection (Outliers nil: off) and RTT tie breaking.
type HealthSpec struct {
	Monitor   *health.Config
	Outliers  *health.OutlierConfig
	PreferRTT bool
	// Describe is the whole health configuration of the app as the
	// operator wrote it: two specs with the same Describe check alike, so
	// a reload that keeps it keeps the running checks.
	Describe string
}

// Defaults of the runtime, in one place.
type Defaults struct {
	Affinity      time.Duration // client affinity TTL, as edgeProxy v1
	WatchInterval time.Duration // least time between table reloads
	DrainFilePoll time.Duration // how often the maintenance file is looked for
	HealthTick    time.Duration // how often the health manager looks at the table
	// ExpiryMaxWait bounds the sleep of heartbeat expiry, which otherwise
	// wakes when the next expiry is due or the file changes.
	ExpiryMaxWait time.Duration
	HealthFlush   time.Duration // how often health rows are written
	// HealthRefresh rewrites every checked backend's health row this often
	// even without a state change, so rtt_us and checked_at stay current
	// without a write per check.
	HealthRefresh time.Duration
	AffinitySweep time.Duration // how often expired affinity bindings are dropped
	MaxHold       time.Duration // the longest an app may hold a stopping POP open
	// ReloadLogEvery is the least time between two info lines about table
	// reloads; the others are debug lines.
	ReloadLogEvery time.Duration
}

// DefaultConfig returns every default of the runtime.
func DefaultConfig() Defaults {
	return Defaults{
		Affinity:       10 * time.Minute,
		WatchInterval:  store.DefaultWatchInterval,
		DrainFilePoll:  250 * time.Millisecond,
		HealthTick:     100 * time.Millisecond,
		ExpiryMaxWait:  time.Second,
		HealthFlush:    200 * time.Millisecond,
		HealthRefresh:  30 * time.Second,
		AffinitySweep:  time.Minute,
		MaxHold:        5 * time.Minute,
		ReloadLogEvery: 10 * time.Second,
	}
}

var defaults = DefaultConfig()
