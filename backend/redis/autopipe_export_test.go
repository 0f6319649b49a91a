package redis

import "context"

// GetAutoForTest reads key through the auto-pipeliner, as Get does when
// another single-key call is under way.
func (b *Backend) GetAutoForTest(ctx context.Context, key string) ([]byte, error) {
	w, err := b.wireKey(key)
	if err != nil {
		return nil, err
	}
	return b.getAuto(ctx, w)
}
