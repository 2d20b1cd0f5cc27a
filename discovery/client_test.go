package discovery

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestClientRunKeepsTheBackendRegistered: the loop registers, heartbeats,
// registers again after the POP forgot the backend, and deregisters when
// told to stop; all over a real socket to the real API on a real table.
func TestClientRunKeepsTheBackendRegistered(t *testing.T) {
	a, st := newAPI(t)
	srv := httptest.NewServer(a)
	defer srv.Close()

	c := &Client{Base: srv.URL, Token: token}
	reg := Registration{ID: "web-1", App: "web", Region: "eu", IP: "198.51.100.7", Port: 8080}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, reg, 300*time.Millisecond) }()

	registered := func() bool {
		_, ok, err := st.GetRegistered(context.Background(), "web-1")
		return err == nil && ok
	}
	waitUntil(t, "registered", registered)
	// The POP forgets it (an expiry, an operator): the next heartbeat gets
	// 404 and the loop registers again.
	if ok, err := st.Deregister(context.Background(), "web-1"); err != nil || !ok {
		t.Fatalf("deregister: %v %v", ok, err)
	}
	waitUntil(t, "registered again", registered)
	r, _, _ := st.GetRegistered(context.Background(), "web-1")
	if !r.HasHeartbeat || r.Port != 8080 {
		t.Fatalf("registration %+v", r)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	if registered() {
		t.Fatal("the backend is still registered after Run returned")
	}
}

// TestClientRunRefusedAtOnce: a wrong token is returned at once, not
// retried forever.
func TestClientRunRefusedAtOnce(t *testing.T) {
	a, _ := newAPI(t)
	srv := httptest.NewServer(a)
	defer srv.Close()
	c := &Client{Base: srv.URL, Token: "wrong"}
	err := c.Run(context.Background(), Registration{ID: "web-1", App: "web", Region: "eu", IP: "198.51.100.7", Port: 80}, time.Second)
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusUnauthorized {
		t.Fatalf("Run with a wrong token: %v, want a 401", err)
	}
}

func waitUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("not %s within 5s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
