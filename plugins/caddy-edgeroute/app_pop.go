package edgeroute

import (
	"context"
	"time"

	"github.com/edgeproxy/edgeproxy/pop"
	"github.com/edgeproxy/edgeproxy/store"
)

// The app is how other apps (bgp, wg6pn) find the POP: ctx.App("edgeroute")
// returns it and they assert pop.POP, without importing this plugin.

// Identity names this POP.
func (a *App) Identity() pop.Identity { return a.rt.Identity() }

// Signal is the POP's health now.
func (a *App) Signal() pop.Signal { return a.rt.Signal() }

// Watch delivers the POP's signal after every change.
func (a *App) Watch() (<-chan pop.Signal, func()) { return a.rt.Watch() }

// SetPop writes columns of this POP's own pops row.
func (a *App) SetPop(ctx context.Context, u store.PopUpdate) error { return a.rt.SetPop(ctx, u) }

// BeginStop moves the POP to stopping.
func (a *App) BeginStop(reason string) { a.rt.BeginStop(reason) }

// Hold keeps a stopping POP's listeners open until release or max.
func (a *App) Hold(name string, max time.Duration) func() { return a.rt.Hold(name, max) }

// Report registers what another app shows on the POP's status page.
func (a *App) Report(name string, f func() any) (remove func()) { return a.rt.Report(name, f) }
