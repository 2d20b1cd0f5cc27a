//go:build !linux

package store

func notifyCommits(path, query string) (*commitReports, error) {
	return nil, errNoCommitWatch
}
