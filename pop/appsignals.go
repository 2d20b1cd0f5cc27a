package pop

import (
	"encoding/json"
	"fmt"
	"iter"
	"slices"

	"github.com/edgeproxy/edgeproxy/internal/shardindex"
)

// AppSignals is every app's signal, by app name. Like the Signal that holds
// it, it is a value that never changes. A signal made after a table edit
// shares every app the edit did not touch with the signal before, so a new
// signal costs the apps it recounted, not the number of apps in the table.
// The zero AppSignals holds no app. In JSON it is an object of app names.
type AppSignals struct {
	idx shardindex.Index[namedSignal]
}

type namedSignal struct {
	name  string
	sig   AppSignal
	tally appTally // what sig was counted from, when it was counted here
}

// appSignalsPerShard is about how many apps a shard holds when the index
// is built.
const appSignalsPerShard = 8

func signalName(s namedSignal) string { return s.name }

// NewAppSignals holds the signals in m.
func NewAppSignals(m map[string]AppSignal) AppSignals {
	entries := make([]namedSignal, 0, len(m))
	for name, s := range m {
		entries = append(entries, namedSignal{name: name, sig: s})
	}
	return AppSignals{shardindex.Build(entries, appSignalsPerShard, signalName)}
}

// Get returns app's signal, and whether the table has the app.
func (a AppSignals) Get(app string) (AppSignal, bool) {
	s, ok := a.idx.Get(app)
	return s.sig, ok
}

// Len is how many apps there are.
func (a AppSignals) Len() int { return a.idx.Len() }

// All yields every app and its signal, in no particular order.
func (a AppSignals) All() iter.Seq2[string, AppSignal] {
	return func(yield func(string, AppSignal) bool) {
		for s := range a.idx.All() {
			if !yield(s.name, s.sig) {
				return
			}
		}
	}
}

// Names lists the apps, sorted.
func (a AppSignals) Names() []string {
	names := make([]string, 0, a.Len())
	for name := range a.All() {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// EditedSince calls f for every app whose signal may differ from its
// signal in prev, or that only one of the two has: every app where they
// differ, and perhaps a few more. For a signal that follows prev it costs
// about the apps that changed.
func (a AppSignals) EditedSince(prev AppSignals, f func(app string)) {
	a.idx.Changed(prev.idx, f)
}

// Equal reports whether a and b hold the same apps with the same signals.
func (a AppSignals) Equal(b AppSignals) bool {
	if a.Len() != b.Len() {
		return false
	}
	same := true
	a.EditedSince(b, func(app string) {
		x, okA := a.Get(app)
		y, okB := b.Get(app)
		same = same && okA == okB && x == y
	})
	return same
}

// with returns the signals without the apps in gone and then with those
// in put, sharing the apps it does not touch with a.
func (a AppSignals) with(gone []string, put []namedSignal) AppSignals {
	n := a.Len() + len(put)
	if a.Len() == 0 || a.idx.Outgrown(n, appSignalsPerShard) {
		// Empty (perhaps never built), or crowded enough to build
		// again with more shards.
		m := make(map[string]namedSignal, n)
		for s := range a.idx.All() {
			m[s.name] = s
		}
		for _, name := range gone {
			delete(m, name)
		}
		for _, s := range put {
			m[s.name] = s
		}
		entries := make([]namedSignal, 0, len(m))
		for _, s := range m {
			entries = append(entries, s)
		}
		return AppSignals{shardindex.Build(entries, appSignalsPerShard, signalName)}
	}
	return AppSignals{a.idx.With(gone, put)}
}

// Map returns the apps' signals in a map of their own.
func (a AppSignals) Map() map[string]AppSignal {
	m := make(map[string]AppSignal, a.Len())
	for name, s := range a.All() {
		m[name] = s
	}
	return m
}

// MarshalJSON writes the apps as an object, sorted by name, as a map of
// them would be written. encoding/json reads a marshaler's output again
// to check it, which about doubles the time: a body written often (the
// signal stream) carries Map instead.
func (a AppSignals) MarshalJSON() ([]byte, error) { return json.Marshal(a.Map()) }

// UnmarshalJSON reads an object of apps, as MarshalJSON writes it.
func (a *AppSignals) UnmarshalJSON(data []byte) error {
	var m map[string]AppSignal
	if err := json.Unmarshal(data, &m); err != nil {
		return fmt.Errorf("apps: %w", err)
	}
	*a = NewAppSignals(m)
	return nil
}
