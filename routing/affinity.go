package routing

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

const affinityShards = 64

// Affinity remembers which backend each client of each app was sent to, for
// a TTL that is refreshed on every use. It is sharded by client address so
// that concurrent connections rarely meet on a lock, and no lock is global.
type Affinity struct {
	ttl    atomic.Int64 // nanoseconds; changed by config reloads
	now    func() time.Time
	shards [affinityShards]affinityShard
}

type affinityShard struct {
	mu sync.Mutex
	m  map[affinityKey]affinityEntry
}

type affinityKey struct {
	app    string
	client netip.Addr
}

type affinityEntry struct {
	backendID string
	expires   int64 // unix nanoseconds
}

// NewAffinity returns an affinity table with the given TTL. A TTL of zero or
// less disables affinity. now may be nil (time.Now); tests pass a clock.
func NewAffinity(ttl time.Duration, now func() time.Time) *Affinity {
	if now == nil {
		now = time.Now
	}
	a := &Affinity{now: now}
	a.ttl.Store(int64(ttl))
	for i := range a.shards {
		a.shards[i].m = make(map[affinityKey]affinityEntry)
	}
	return a
}

// TTL is how long an unused binding lives.
func (a *Affinity) TTL() time.Duration { return time.Duration(a.ttl.Load()) }

// SetTTL changes the TTL of bindings made or refreshed from now on. Zero or
// less disables affinity.
func (a *Affinity) SetTTL(ttl time.Duration) { a.ttl.Store(int64(ttl)) }

func (a *Affinity) shard(client netip.Addr) *affinityShard {
	b := client.As16()
	h := uint32(2166136261)
	for _, c := range b[8:] {
		h = (h ^ uint32(c)) * 16777619
	}
	return &a.shards[h%affinityShards]
}

// Get returns the backend ID the client is bound to and refreshes the
// binding, or "" when there is none or it expired.
func (a *Affinity) Get(app string, client netip.Addr) string {
	if a == nil {
		return ""
	}
	ttl := a.TTL()
	if ttl <= 0 {
		return ""
	}
	k := affinityKey{app, client.Unmap()}
	s := a.shard(k.client)
	now := a.now().UnixNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[k]
	if !ok {
		return ""
	}
	if e.expires <= now {
		delete(s.m, k)
		return ""
	}
	e.expires = now + int64(ttl)
	s.m[k] = e
	return e.backendID
}

// Set binds the client to a backend.
func (a *Affinity) Set(app string, client netip.Addr, backendID string) {
	if a == nil || a.TTL() <= 0 {
		return
	}
	k := affinityKey{app, client.Unmap()}
	s := a.shard(k.client)
	exp := a.now().UnixNano() + a.ttl.Load()
	s.mu.Lock()
	s.m[k] = affinityEntry{backendID: backendID, expires: exp}
	s.mu.Unlock()
}

// Forget removes the client's binding.
func (a *Affinity) Forget(app string, client netip.Addr) {
	if a == nil || a.TTL() <= 0 {
		return
	}
	k := affinityKey{app, client.Unmap()}
	s := a.shard(k.client)
	s.mu.Lock()
	delete(s.m, k)
	s.mu.Unlock()
}

// Sweep drops expired bindings and returns how many remain. Call it
// periodically; Get already ignores expired entries.
func (a *Affinity) Sweep() int {
	if a == nil || a.TTL() <= 0 {
		return 0
	}
	now := a.now().UnixNano()
	left := 0
	for i := range a.shards {
		s := &a.shards[i]
		s.mu.Lock()
		for k, e := range s.m {
			if e.expires <= now {
				delete(s.m, k)
			}
		}
		left += len(s.m)
		s.mu.Unlock()
	}
	return left
}

// Peek returns the client's binding without refreshing it, for reports.
func (a *Affinity) Peek(app string, client netip.Addr) string {
	if a == nil {
		return ""
	}
	k := affinityKey{app, client.Unmap()}
	s := a.shard(k.client)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.m[k]; ok && e.expires > a.now().UnixNano() {
		return e.backendID
	}
	return ""
}
