package kv

import (
	"errors"
	"fmt"

	"github.com/kvmap/kv/backend"
)

// Sentinel errors, the same values as package backend's, so errors.Is holds
// whichever layer returned the error.
var (
	// ErrClosed is returned by calls on a closed backend.
	ErrClosed = backend.ErrClosed
	// ErrEmptyKey is returned for an empty key; nothing is written.
	ErrEmptyKey = backend.ErrEmptyKey
	// ErrInvalidNamespace is returned by New for an empty namespace or one
	// holding ":".
	ErrInvalidNamespace = backend.ErrInvalidNamespace
	// ErrInvalidTTL is returned for a TTL of 0, or negative other than NoTTL;
	// nothing is written.
	ErrInvalidTTL = backend.ErrInvalidTTL
	// ErrWrongType is returned by Get when the key holds data of another kind
	// (a Redis list, say).
	ErrWrongType = backend.ErrWrongType
	// ErrTooLarge is returned when a key or value exceeds what the store can
	// hold; nothing is written.
	ErrTooLarge = backend.ErrTooLarge
	// ErrInvalidOption is returned by New for an option it cannot apply.
	ErrInvalidOption = errors.New("kv: invalid option")
)

// BatchError reports a SetMany or DeleteMany that a store carried out in
// parts (Redis pipelines a batch) and that failed part-way: which keys were
// written (or deleted), which certainly were not, and which are unknown (the
// command was sent but its reply was lost). Keys are the Map's, without the
// namespace. Find it with errors.As; errors.Is sees through it to the cause.
type BatchError = backend.BatchError

// DecodeError reports a stored value that the Map's codec could not decode.
type DecodeError struct {
	// Key is the key of the value, without the namespace.
	Key string
	// Err is the codec's error.
	Err error
}

// Error implements error.
func (e *DecodeError) Error() string {
	return fmt.Sprintf("decode value of key %q: %v", e.Key, e.Err)
}

// Unwrap returns the codec's error.
func (e *DecodeError) Unwrap() error { return e.Err }
