//go:build !linux

package store

import (
	"context"
	"errors"
)

func notifyChanges(ctx context.Context, path string) (<-chan struct{}, error) {
	return nil, errors.New("no file change notifications on this platform")
}
