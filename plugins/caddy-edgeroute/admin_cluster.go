package edgeroute

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/edgeproxy/edgeproxy/cluster"
)

// ClusterView is the body of GET /edgeroute/cluster.
type ClusterView struct {
	cluster.Status
	Changes  map[string]uint64 `json:"changes"`
	Messages map[string]uint64 `json:"messages"`
	Bytes    map[string]uint64 `json:"bytes"`
	// Global is the bridge's node in the global cluster, on a bridge.
	Global *ClusterView `json:"global,omitempty"`
}

// clusterStatus serves GET /edgeroute/cluster: members and their state,
// this POP's site id, version and vector, per-member lag.
func (a *adminAPI) clusterStatus(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("method %s not allowed", r.Method)}
	}
	if err := a.ready(); err != nil {
		return err
	}
	n := a.app.rt.Cluster()
	if n == nil {
		return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: errors.New("this POP runs alone: edgeroute has no cluster block")}
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	view := clusterView(ctx, n)
	if g := a.app.rt.Bridge(); g != nil {
		gv := clusterView(ctx, g)
		view.Global = &gv
	}
	return writeJSON(w, view)
}

func clusterView(ctx context.Context, n *cluster.Node) ClusterView {
	return ClusterView{Status: n.Status(ctx),
		Changes: map[string]uint64{"sent": n.Stats.ChangesSent.Load(), "applied": n.Stats.ChangesApplied.Load(),
			"stale": n.Stats.ChangesStale.Load(), "refused": n.Stats.ChangesRefused.Load(), "relayed": n.Stats.ChangesRelayed.Load(),
			"forwarded": n.Stats.ChangesForwarded.Load()},
		Messages: map[string]uint64{"sent": n.Stats.MessagesSent.Load(), "received": n.Stats.MessagesRecv.Load(),
			"refused": n.Stats.MessagesRefused.Load()},
		Bytes: map[string]uint64{"sent": n.Stats.BytesSent.Load(), "received": n.Stats.BytesRecv.Load(),
			"pushed": n.Stats.BytesPushed.Load()},
	}
}
