package store

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// Heartbeats arriving together are committed in a few groups, not one
// commit each, and every caller still gets its own answer: found for the
// live backends, not found for an unknown ID, and every expiry pushed.
func TestHeartbeatsArrivingTogetherShareCommits(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	now := time.Unix(1_700_000_000, 0)
	const backends = 20
	for i := range backends {
		reg := Registration{ID: fmt.Sprintf("b%d", i), App: "myapp", Region: "eu", IP: fmt.Sprintf("10.50.1.%d", i+1), Port: 8080}
		if _, err := s.Register(ctx, reg, time.Minute, now); err != nil {
			t.Fatal(err)
		}
	}
	later := now.Add(30 * time.Second)
	const rounds = 15
	var wg sync.WaitGroup
	var mu sync.Mutex
	wrong := []string{}
	s.heartbeats.committing.Lock()
	before := s.heartbeats.commits
	s.heartbeats.committing.Unlock()
	for r := range rounds {
		for i := range backends + 1 {
			wg.Go(func() {
				id := fmt.Sprintf("b%d", i)
				if i == backends {
					id = "nobody"
				}
				found, err := s.Heartbeat(ctx, id, time.Minute, later.Add(time.Duration(r)*time.Millisecond))
				if err != nil || found != (i < backends) {
					mu.Lock()
					wrong = append(wrong, fmt.Sprintf("%s: found=%v err=%v", id, found, err))
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	if len(wrong) > 0 {
		t.Fatalf("%d heartbeats answered wrongly, first: %s", len(wrong), wrong[0])
	}
	calls := rounds * (backends + 1)
	s.heartbeats.committing.Lock()
	commits := s.heartbeats.commits - before
	s.heartbeats.committing.Unlock()
	t.Logf("%d heartbeats in %d commits", calls, commits)
	if commits > calls/5 {
		t.Fatalf("%d heartbeats arriving together took %d commits", calls, commits)
	}
	var expiring int
	if err := s.DB().QueryRow(`SELECT count(*) FROM heartbeats WHERE expires_at >= ?`, ms(later.Add(time.Minute))).Scan(&expiring); err != nil {
		t.Fatal(err)
	}
	if expiring != backends {
		t.Fatalf("%d of %d backends had their expiry pushed", expiring, backends)
	}
}
