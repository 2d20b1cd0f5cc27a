package store

import (
	"context"
	"testing"
	"time"
)

// Every observer's row of every backend is read back as written, ordered
// by backend then observer.
func TestHealthObservations(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	at := time.Unix(1_700_000_000, 0)
	if err := s.WriteHealth(ctx, "gru-1", []HealthRow{{BackendID: "b", Healthy: false, RTT: 0, CheckedAt: at},
		{BackendID: "a", Healthy: true, RTT: 1500 * time.Microsecond, CheckedAt: at}}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteHealth(ctx, "fra-1", []HealthRow{{BackendID: "a", Healthy: false, RTT: 0, CheckedAt: at.Add(time.Second)}}, nil); err != nil {
		t.Fatal(err)
	}
	got, err := s.HealthObservations(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []Observation{
		{BackendID: "a", Observer: "fra-1", Healthy: false, CheckedAt: at.Add(time.Second)},
		{BackendID: "a", Observer: "gru-1", Healthy: true, RTT: 1500 * time.Microsecond, CheckedAt: at},
		{BackendID: "b", Observer: "gru-1", Healthy: false, CheckedAt: at},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d observations, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i].BackendID != want[i].BackendID || got[i].Observer != want[i].Observer || got[i].Healthy != want[i].Healthy ||
			got[i].RTT != want[i].RTT || !got[i].CheckedAt.Equal(want[i].CheckedAt) {
			t.Errorf("observation %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

// Observations of named backends are theirs alone: a status page that
// lists a few of a large table's backends reads only their rows.
func TestHealthObservationsOfNamedBackends(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	at := time.Unix(1_700_000_000, 0)
	if err := s.WriteHealth(ctx, "gru-1", []HealthRow{{BackendID: "a", Healthy: true, CheckedAt: at},
		{BackendID: "b", Healthy: false, CheckedAt: at}, {BackendID: "c", Healthy: true, CheckedAt: at}}, nil); err != nil {
		t.Fatal(err)
	}
	got, err := s.HealthObservations(ctx, []string{"c", "a", "nobody"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].BackendID != "a" || got[1].BackendID != "c" {
		t.Fatalf("observations of a and c: %+v", got)
	}
	if got, err := s.HealthObservations(ctx, []string{}); err != nil || len(got) != 0 {
		t.Fatalf("observations of no backend: %+v, %v", got, err)
	}
}
