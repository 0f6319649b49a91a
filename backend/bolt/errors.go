package bolt

import (
	"errors"
	"fmt"
	"time"

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

// ClockMismatchError is the error of Open for a file written under a
// simulated clock opened for writing with the wall clock. It wraps
// ErrClockMismatch; File is the file's clock, for a message of the caller's
// own (the kv command names its flags, not these options).
type ClockMismatchError struct {
	File FileClock
}

// Error implements error.
func (e *ClockMismatchError) Error() string {
	latest := "no time recorded"
	if !e.File.Latest.IsZero() {
		latest = "latest " + e.File.Latest.UTC().Format(time.RFC3339Nano)
	}
	return fmt.Sprintf("%v: the file was written under a simulated clock (%s); open it with WithSimulatedClock, read-only, or WithClockOverride",
		ErrClockMismatch, latest)
}

// Unwrap returns ErrClockMismatch.
func (e *ClockMismatchError) Unwrap() error { return ErrClockMismatch }

// ErrTimeRange is wrapped by the error of a call made while the clock reads
// outside TimeRange (years 1 to 9999), and of a TTL asked for at a time so
// long before the key's deadline that a time.Duration cannot hold it. Nothing
// is written.
var ErrTimeRange = errors.New("bolt: time outside the range a file holds")

// ErrNoFileTime is returned by Open with WithFileTime for a file that
// records no time of its clock (a file written before clocks were recorded):
// there is no time to read it as of.
var ErrNoFileTime = errors.New("bolt: the file records no time of its clock")

// ErrNotRegularFile is returned by Open for a path that names something
// other than a regular file (a directory, a named pipe, a device, a socket),
// at once, without waiting on it.
var ErrNotRegularFile = errors.New("bolt: not a regular file")

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
