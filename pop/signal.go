package pop

import "time"

// State is what the POP is doing as a whole.
type State string

const (
	// Serving: the POP takes traffic for every app it can route.
	Serving State = "serving"
	// Draining: an operator asked the POP to shed traffic (drain command,
	// admin API or maintenance file). Listeners stay open; announcements
	// are drained and withdrawn.
	Draining State = "draining"
	// Stopping: the process is exiting. Apps finish what they hold open
	// (see Holds) before listeners close.
	Stopping State = "stopping"
)

// AppSignal is one app as this POP can serve it.
type AppSignal struct {
	// Routable counts backends that are healthy, not deleted, under their
	// hard limit and not ejected: a connection could go to them now.
	Routable int `json:"routable"`
	// Backends counts the app's live (not deleted) backends.
	Backends int `json:"backends"`
	// Reason says why Routable is less than Backends, when it is.
	Reason string `json:"reason,omitempty"`
}

// Signal is the POP's health as other apps follow it. It is a value:
// readers get a copy and never see it change.
type Signal struct {
	Node  string `json:"node"`
	State State  `json:"state"`
	// StateReason says what put the POP in State (an operator's drain,
	// the maintenance file, a signal to the process).
	StateReason string `json:"state_reason"`
	// Stale is set while the table file cannot be read: routing goes on
	// with the last good snapshot, whose counts Apps keeps.
	Stale       bool   `json:"stale"`
	StaleReason string `json:"stale_reason,omitempty"`
	// Apps has every app the table has, by name.
	Apps AppSignals `json:"apps"`
	// Generation is the table snapshot the counts come from.
	Generation uint64 `json:"generation"`
	// Seq increases with every change of the signal.
	Seq uint64 `json:"seq"`
	// Changed is when the signal last changed; Since when State did.
	Changed time.Time `json:"changed"`
	Since   time.Time `json:"since"`
}

// Routable returns the routable backends of app and whether the table has
// the app at all.
func (s Signal) Routable(app string) (int, bool) {
	a, ok := s.Apps.Get(app)
	return a.Routable, ok
}

// AppNames lists the apps in the signal, sorted.
func (s Signal) AppNames() []string { return s.Apps.Names() }

// SameState reports whether s and o say the same of the POP as a whole:
// its node, its state and why, and whether its table is stale and why.
func (s Signal) SameState(o Signal) bool {
	return s.Node == o.Node && s.State == o.State && s.StateReason == o.StateReason && s.Stale == o.Stale &&
		s.StaleReason == o.StaleReason
}

// sameContent reports whether two signals say the same thing, whatever
// their sequence numbers and times.
func sameContent(a, b Signal) bool {
	return a.SameState(b) && a.Generation == b.Generation && a.Apps.Equal(b.Apps)
}
