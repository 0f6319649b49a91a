package redis

import (
	"context"
	"time"
)

// SetAutoForTest sends the SET of one entry through the auto-pipeliner, as
// MSet does when another single-key call is under way (WithAutoPipeline).
func (b *Backend) SetAutoForTest(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	w, err := b.wireKey(key)
	if err != nil {
		return err
	}
	return b.wrapWrite(ctx, "SET", b.setAuto(ctx, w, value, ttl))
}

// LeaseKeyForTest returns the stored lease key of a backend key.
func (b *Backend) LeaseKeyForTest(key string) string {
	w, err := b.wireKey(key)
	if err != nil {
		return ""
	}
	return leaseKey(w)
}
