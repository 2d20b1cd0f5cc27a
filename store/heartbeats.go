package store

import (
	"context"
	"sync"
	"time"
)

// Heartbeats are committed in groups. Every commit wakes every reader of
// the file (each proxy's and DNS server's watcher looks at it), and a
// large fleet heartbeats thousands of times a second, while a heartbeat
// can wait a few milliseconds. A heartbeat that finds no commit of
// heartbeats in the last heartbeatGap commits at once; one that comes
// sooner joins the next group, committed heartbeatGap after the last. Each
// caller still learns its own outcome (found, or the error) from the
// commit that carried it.
const heartbeatGap = 5 * time.Millisecond

type heartbeat struct {
	id  string
	ttl time.Duration
	now time.Time
}

type heartbeatResult struct {
	found bool
	err   error
}

type heartbeatWaiter struct {
	h    heartbeat
	done chan heartbeatResult
}

// heartbeatGroups gathers the heartbeats of one store.
type heartbeatGroups struct {
	mu      sync.Mutex
	pending []*heartbeatWaiter
	leader  bool // a caller will commit pending
	// committing is held by the caller committing a group: the next
	// group's leader waits for it, gathering the heartbeats that arrive
	// meanwhile.
	committing sync.Mutex
	last       time.Time // when the last group was committed (under committing)
	commits    int       // groups committed (under committing), for tests
}

// join adds h to the next group and waits for it to be committed. The
// first caller of a group commits it, once the group before is committed
// and heartbeatGap has passed since; the others wait for it.
func (g *heartbeatGroups) join(ctx context.Context, s *Store, h heartbeat) (bool, error) {
	w := &heartbeatWaiter{h: h, done: make(chan heartbeatResult, 1)}
	g.mu.Lock()
	g.pending = append(g.pending, w)
	lead := !g.leader
	g.leader = true
	g.mu.Unlock()
	if lead {
		g.committing.Lock()
		if wait := time.Until(g.last.Add(heartbeatGap)); wait > 0 {
			time.Sleep(wait)
		}
		g.mu.Lock()
		group := g.pending
		g.pending, g.leader = nil, false
		g.mu.Unlock()
		// The group is everyone's: one caller giving up must not fail
		// the others' commit.
		s.commitHeartbeats(context.WithoutCancel(ctx), group)
		g.last = time.Now()
		g.commits++
		g.committing.Unlock()
	}
	select {
	case r := <-w.done:
		return r.found, r.err
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

// commitHeartbeats writes a group in one transaction. Should it fail, each
// heartbeat is written on its own, so that one heartbeat's error is its
// own.
func (s *Store) commitHeartbeats(ctx context.Context, group []*heartbeatWaiter) {
	if len(group) > 1 {
		found, err := s.heartbeatTx(ctx, group)
		if err == nil {
			for i, w := range group {
				w.done <- heartbeatResult{found: found[i]}
			}
			return
		}
	}
	for _, w := range group {
		found, err := s.heartbeatTx(ctx, []*heartbeatWaiter{w})
		if err != nil {
			w.done <- heartbeatResult{err: err}
			continue
		}
		w.done <- heartbeatResult{found: found[0]}
	}
}

func (s *Store) heartbeatTx(ctx context.Context, group []*heartbeatWaiter) ([]bool, error) {
	defer s.writeLock()()
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return nil, s.wrap(err)
	}
	defer tx.Rollback()
	found := make([]bool, len(group))
	for i, w := range group {
		if found[i], err = s.heartbeat(ctx, tx, w.h); err != nil {
			return nil, s.wrap(err)
		}
	}
	return found, s.wrapNil(tx.Commit())
}
