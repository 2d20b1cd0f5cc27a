package discovery

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/edgeproxy/edgeproxy/store"
)

// ErrNotFound is a backend ID no live backend has.
var ErrNotFound = errors.New("backend not found")

// Service is what registration does to a routing table, behind every way
// in: edgeProxy v1's HTTP API (API) and the operator's admin routes.
type Service struct {
	Store *store.Store
	// Country locates an address for registrations without a country
	// (GeoIP). May be nil.
	Country func(netip.Addr) string
	// Down reports whether this POP currently holds a backend down
	// (health checks, ejection). May be nil.
	Down func(id string) bool
	// OnChange is told about every successful write, for logs: what
	// happened ("registered", "deregistered") and the backend ID.
	OnChange func(event, id string)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (s *Service) now() time.Time {
	if s.Now == nil {
		return time.Now()
	}
	return s.Now()
}

func (s *Service) changed(event, id string) {
	if s.OnChange != nil {
		s.OnChange(event, id)
	}
}

// Register validates a v1 payload and registers (or updates) the backend.
// With ttl > 0 it must heartbeat within ttl or be removed. A bad payload
// is an *InputError.
func (s *Service) Register(ctx context.Context, body []byte, ttl time.Duration) (store.Registration, error) {
	reg, err := ParseRegistration(body, s.Country)
	if err != nil {
		return reg, err
	}
	if _, err := s.Store.Register(ctx, reg, ttl, s.now()); err != nil {
		return reg, err
	}
	s.changed("registered", reg.ID)
	return reg, nil
}

// Heartbeat keeps a backend alive for another ttl.
func (s *Service) Heartbeat(ctx context.Context, id string, ttl time.Duration) error {
	ok, err := s.Store.Heartbeat(ctx, id, ttl, s.now())
	if err == nil && !ok {
		return ErrNotFound
	}
	return err
}

// Deregister removes a backend.
func (s *Service) Deregister(ctx context.Context, id string) error {
	ok, err := s.Store.Deregister(ctx, id)
	switch {
	case err != nil:
		return err
	case !ok:
		return ErrNotFound
	}
	s.changed("deregistered", id)
	return nil
}

// Get is one backend as the API shows it.
func (s *Service) Get(ctx context.Context, id string) (BackendStatus, error) {
	r, ok, err := s.Store.GetRegistered(ctx, id)
	switch {
	case err != nil:
		return BackendStatus{}, err
	case !ok:
		return BackendStatus{}, ErrNotFound
	}
	return s.Status(r, s.now()), nil
}

// List is every live backend as the API shows it.
func (s *Service) List(ctx context.Context) ([]BackendStatus, error) {
	rows, err := s.Store.ListRegistered(ctx)
	if err != nil {
		return nil, err
	}
	now := s.now()
	out := make([]BackendStatus, 0, len(rows))
	for _, r := range rows {
		out = append(out, s.Status(r, now))
	}
	return out, nil
}

// Status turns a stored backend into its API view at time now: a backend
// whose heartbeat expired, or which this POP holds down, is unhealthy.
func (s *Service) Status(r store.Registered, now time.Time) BackendStatus {
	st := BackendStatus{ID: r.ID, App: r.App, Region: r.Region, Country: r.Country, IP: r.IP, Port: r.Port,
		Healthy: r.Healthy, Weight: r.Weight, SoftLimit: r.SoftLimit, HardLimit: r.HardLimit, Heartbeat: r.HasHeartbeat}
	if r.HasHeartbeat {
		st.LastHeartbeatSecs = secs(now.Sub(r.LastSeen))
		st.RegisteredSecs = secs(now.Sub(r.RegisteredAt))
		if !now.Before(r.ExpiresAt) {
			st.Healthy = false
		}
	}
	if s.Down != nil && s.Down(r.ID) {
		st.Healthy = false
	}
	return st
}
