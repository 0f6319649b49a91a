package kv

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

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
	// ErrCorrupt is returned when the store's data is damaged (a truncated or
	// overwritten bbolt file): the call fails instead of crashing the process.
	ErrCorrupt = backend.ErrCorrupt
	// ErrReadOnly is returned by every write to a store opened read-only (a
	// bbolt file opened with bolt.WithReadOnly); nothing is written.
	ErrReadOnly = backend.ErrReadOnly
	// ErrUnknownOutcome is returned, wrapped with its cause, by a write whose
	// command reached the store but whose reply was lost (a connection
	// killed, a deadline after sending): it may or may not have been applied,
	// and it is never sent again behind the caller's back. A batch reports
	// such keys in BatchError.Unknown, and matches it too.
	ErrUnknownOutcome = backend.ErrUnknownOutcome
	// ErrNotFound is what a load function of GetOrLoad returns, wrapped, for
	// a key its source does not have; GetOrLoad returns it (wrapped) and,
	// with WithMissTTL, remembers the miss for a while.
	ErrNotFound = errors.New("kv: not found")
	// ErrInvalidOption is returned by New for an option it cannot apply.
	ErrInvalidOption = errors.New("kv: invalid option")

	// ErrLoadTimeout is returned by GetOrLoad and GetManyOrLoad when a load
	// ran past its WithLoadTimeout; the error also matches
	// context.DeadlineExceeded.
	ErrLoadTimeout = errors.New("kv: load timed out")
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

// Error implements error. It names the key (cut to 64 bytes) and the kind of
// failure, never any part of the stored value: a codec's own message may
// quote the value (encoding/json does), so it is left to Err.
func (e *DecodeError) Error() string {
	return fmt.Sprintf("decode value of key %s: %s", backend.QuoteKey(e.Key), describeCodecError(e.Err))
}

// codecError is an encode error, described without the value.
type codecError struct{ err error }

func (e codecError) Error() string { return describeCodecError(e.err) }
func (e codecError) Unwrap() error { return e.err }

// describeCodecError says what went wrong in a codec without quoting the
// value: encoding/json's messages quote numbers and characters of it.
func describeCodecError(err error) string {
	var (
		syn  *json.SyntaxError
		typ  *json.UnmarshalTypeError
		uval *json.UnsupportedValueError
		utyp *json.UnsupportedTypeError
	)
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("invalid JSON at byte %d", syn.Offset)
	case errors.As(err, &typ):
		kind, _, _ := strings.Cut(typ.Value, " ") // "number 41..." -> "number"
		if typ.Field != "" {
			return fmt.Sprintf("JSON %s cannot be stored in field %s of Go type %v", kind, typ.Field, typ.Type)
		}
		return fmt.Sprintf("JSON %s cannot be stored in Go type %v", kind, typ.Type)
	case errors.As(err, &uval):
		return "JSON cannot encode the value (NaN, infinity or a cycle)"
	case errors.As(err, &utyp):
		return utyp.Error() // names the type only
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "value ends early"
	}
	return fmt.Sprintf("codec failed (%T; see Unwrap)", err)
}

// Unwrap returns the codec's error.
func (e *DecodeError) Unwrap() error { return e.Err }
