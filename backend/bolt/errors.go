package bolt

import (
	"errors"
	"fmt"

	"github.com/kvmap/kv/backend"
)

// ErrLocked is returned by Open when another process (or another Open in
// this one) holds the file and the lock timeout passed.
var ErrLocked = errors.New("bolt: file is locked by another process")

// LimitError reports a key or value larger than bbolt can hold. It wraps
// backend.ErrTooLarge; nothing was written.
type LimitError struct {
	// What is "key", "namespace" or "value".
	What string
	// Key is the backend key concerned.
	Key string
	// Size and Limit are in bytes.
	Size, Limit int
}

// Error implements error.
func (e *LimitError) Error() string {
	return fmt.Sprintf("bolt: %s of key %.64q is %d bytes; bbolt holds at most %d", e.What, e.Key, e.Size, e.Limit)
}

// Unwrap returns backend.ErrTooLarge.
func (e *LimitError) Unwrap() error { return backend.ErrTooLarge }
