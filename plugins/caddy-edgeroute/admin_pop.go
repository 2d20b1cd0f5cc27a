package edgeroute

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/edgeproxy/edgeproxy/pop"
)

// The POP's health signal on the admin API:
//
//	GET  /edgeroute/pop[?watch=1][&app=NAME,...]
//	                                the signal with the reason for every part;
//	                                with watch, one JSON line per change until closed;
//	                                with app, only the named apps, and a line only
//	                                when the POP's state or one of them changed
//	POST /edgeroute/drain           drain the POP ({"reason": "..."} optional)
//	POST /edgeroute/undrain         end an operator's drain

// PopView is the body of GET /edgeroute/pop.
type PopView struct {
	pop.Signal
	// Apps is Signal.Apps as a map, in its place in the JSON: the
	// encoder writes a map in one pass, and the stream writes the body
	// at every change of the signal.
	Apps      map[string]pop.AppSignal `json:"apps"`
	Region    string                   `json:"region"`
	Country   string                   `json:"country"`
	DrainFile string                   `json:"drain_file,omitempty"`
	StopDelay string                   `json:"stop_delay,omitempty"`
}

func (a *adminAPI) popView(s pop.Signal, f popFilter) PopView {
	v := PopView{Signal: s, Apps: f.apps(s.Apps), Region: a.app.Region, Country: a.app.Country, DrainFile: a.app.DrainFile}
	if a.app.StopDelay > 0 {
		v.StopDelay = time.Duration(a.app.StopDelay).String()
	}
	return v
}

func (a *adminAPI) popStatus(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return apiErr(http.StatusMethodNotAllowed, "method %s not allowed: use GET", r.Method)
	}
	if err := a.ready(); err != nil {
		return err
	}
	f := popFilterOf(r.URL.Query())
	if q := r.URL.Query().Get("watch"); q == "" || q == "0" || q == "false" {
		return writeJSON(w, a.popView(a.app.Signal(), f))
	}
	updates, stop := a.app.Watch()
	defer stop()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	rc := http.NewResponseController(w)
	enc := json.NewEncoder(w)
	var last *pop.Signal
	for {
		select {
		case <-r.Context().Done():
			return nil
		case s, ok := <-updates:
			if !ok {
				return nil
			}
			if f != nil && last != nil && f.same(*last, s) {
				continue // nothing the watcher asked about changed
			}
			if err := enc.Encode(a.popView(s, f)); err != nil {
				return nil
			}
			last = &s
			if err := rc.Flush(); err != nil {
				return nil
			}
		}
	}
}

// drainRequest is the optional body of POST /edgeroute/drain.
type drainRequest struct {
	Reason string `json:"reason"`
}

func (a *adminAPI) drain(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodPost {
		return apiErr(http.StatusMethodNotAllowed, "method %s not allowed: use POST", r.Method)
	}
	if err := a.ready(); err != nil {
		return err
	}
	var req drainRequest
	if r.ContentLength != 0 {
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			return apiErr(http.StatusBadRequest, "body: %v (send nothing, or {\"reason\": \"...\"})", err)
		}
	}
	reason := strings.TrimSpace(req.Reason)
	if reason == "" {
		reason = "an operator drained the POP through the admin API"
	}
	reason = fmt.Sprintf("%s (at %s)", reason, time.Now().UTC().Format(time.RFC3339))
	a.app.rt.Drain(reason)
	a.app.logger.Warn("POP drained by an operator", zap.String("reason", reason))
	return writeJSON(w, a.popView(a.app.Signal(), nil))
}

func (a *adminAPI) undrain(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodPost {
		return apiErr(http.StatusMethodNotAllowed, "method %s not allowed: use POST", r.Method)
	}
	if err := a.ready(); err != nil {
		return err
	}
	if a.app.rt.Undrain() {
		a.app.logger.Warn("POP undrained by an operator")
	}
	return writeJSON(w, a.popView(a.app.Signal(), nil))
}
