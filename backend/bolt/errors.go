package bolt

import (
	"errors"
	"fmt"

	"github.com/kvmap/kv/backend"
)

// ErrLocked is returned by Open when another process (or another Open in
// this one) holds the file and the lock timeout passed.
var ErrLocked = errors.New("bolt: file is locked by another process")

// ErrReadOnly is returned by every write through a Backend opened with
// WithReadOnly, before the file is touched. It is backend.ErrReadOnly, which
// package kv re-exports as kv.ErrReadOnly.
var ErrReadOnly = backend.ErrReadOnly

// ErrClockMismatch is returned by Open for a file written under a simulated
// clock opened for writing with the wall clock: its sweep would delete, by
// wall time, keys that are live in the backtest's time. Open it with
// WithSimulatedClock, WithReadOnly, or WithClockOverride.
var ErrClockMismatch = errors.New("bolt: the file was written under another kind of clock")

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
