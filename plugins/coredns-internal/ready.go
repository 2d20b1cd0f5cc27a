package internal

// Ready implements the ready plugin's Readiness: true once a snapshot of the
// routing table is being served. Setup loads the first one, so a server
// that started is ready; the check guards instances built otherwise.
func (in *Internal) Ready() bool { return in.snap.Load() != nil }
