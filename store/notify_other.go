//go:build !linux

package store

import (
	"context"
	"errors"
)

func notifyChanges(ctx context.Context, path string) (*ChangeReports, error) {
	return nil, errors.New("no file change notifications on this platform")
}
