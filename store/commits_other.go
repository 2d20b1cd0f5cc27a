//go:build !linux

package store

import (
	"errors"
)

func notifyCommits(path, query string) (*commitReports, error) {
	return nil, errors.New("no commit reports on this platform")
}
