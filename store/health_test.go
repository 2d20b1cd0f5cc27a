package store

import (
	"context"
	"maps"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// A backend is down when every observer says so; one observer that still
// reaches it keeps it up. Readers (the DNS server) get the same answer from
// a read-only store, and nothing from a v1 file without health rows.
func TestDownBackends(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	now := time.Now()
	if err := s.WriteHealth(ctx, "gru-1", []HealthRow{{BackendID: "a", Healthy: false, CheckedAt: now},
		{BackendID: "b", Healthy: false, CheckedAt: now}, {BackendID: "c", Healthy: true, CheckedAt: now}}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteHealth(ctx, "fra-1", []HealthRow{{BackendID: "a", Healthy: false, CheckedAt: now},
		{BackendID: "b", Healthy: true, CheckedAt: now}}, nil); err != nil {
		t.Fatal(err)
	}
	ro, err := Open(ctx, s.Path(), Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	for _, st := range []*Store{s, ro} {
		down, err := st.DownBackends(ctx)
		if got := slices.Sorted(maps.Keys(down)); err != nil || !slices.Equal(got, []string{"a"}) {
			t.Fatalf("read-only %v: down %v %v, want [a]", st.readOnly, got, err)
		}
	}
	v1 := filepath.Join(t.TempDir(), "routing.db")
	sqlite(t, v1, v1Schema)
	old, err := Open(ctx, v1, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if down, err := old.DownBackends(ctx); err != nil || len(down) != 0 {
		t.Fatalf("v1 file: %v %v", down, err)
	}
}
