package backend

import "errors"

// Errors shared by every layer; package kv re-exports them as the same values.
var (
	// ErrClosed is returned by any call on a closed Backend or Map.
	ErrClosed = errors.New("kv: closed")
	// ErrEmptyKey is returned when a key is empty; nothing is written.
	ErrEmptyKey = errors.New("kv: empty key")
	// ErrInvalidNamespace is returned for a namespace that is empty or holds
	// a character the store format reserves (":").
	ErrInvalidNamespace = errors.New("kv: invalid namespace")
	// ErrInvalidTTL is returned for a TTL of 0 where a TTL is required, or a
	// negative TTL other than NoTTL; nothing is written.
	ErrInvalidTTL = errors.New("kv: invalid TTL")
	// ErrWrongType is returned when a key holds data the Backend cannot read
	// as a value (a Redis list under a namespace, say).
	ErrWrongType = errors.New("kv: key holds a value of another type")
	// ErrTooLarge is returned when a key or value exceeds what the store can
	// hold; nothing is written.
	ErrTooLarge = errors.New("kv: key or value too large")
	// ErrCorrupt is returned when the store's data is damaged (a truncated or
	// overwritten bbolt file): the call is refused instead of crashing the
	// process, and nothing is written.
	ErrCorrupt = errors.New("kv: store is corrupt")
	// ErrReadOnly is returned by every write to a store opened read-only;
	// nothing is written.
	ErrReadOnly = errors.New("kv: store is read-only")
	// ErrUnknownOutcome is returned, wrapped together with its cause, by a
	// write whose command reached the store but whose reply was lost (a
	// connection reset, a deadline after the command was sent): the write
	// may or may not have been applied, and it is not sent again behind the
	// caller's back. A write that certainly did not happen (no connection
	// could be made, the server refused it) does not match it. A batch
	// reports such keys in BatchError.Unknown instead, and then matches it
	// too.
	ErrUnknownOutcome = errors.New("kv: write outcome unknown (sent, reply lost)")
)
