package store

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkRegister is registrations with heartbeats into a file that
// holds 10,000 backends, committed in batches of 32 as 32 concurrent
// clients make them: the SQL a registration costs, triggers and commit
// included.
func BenchmarkRegister(b *testing.B) {
	path := seedTable(b, 10000)
	ctx := context.Background()
	s, err := Open(ctx, path, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if err := s.ensureRegistry(); err != nil {
		b.Fatal(err)
	}
	const batch = 32
	now := time.Now()
	i := 0
	for b.Loop() {
		reqs := make([]*regReq, batch)
		for j := range reqs {
			i++
			reqs[j] = &regReq{r: Registration{ID: fmt.Sprintf("reg-%d", i), App: fmt.Sprintf("bench%d", i%8), Region: "eu",
				IP: fmt.Sprintf("10.0.%d.%d", (i>>8)&255, i&255), Port: 1 + i%65535}, ttl: time.Minute, now: now, done: make(chan struct{})}
		}
		s.commitRegistrations(reqs)
		for _, r := range reqs {
			if r.err != nil {
				b.Fatal(r.err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/registration")
}
