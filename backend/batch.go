package backend

import "fmt"

// BatchError reports a batch (an MSet or a Delete of several keys) that a
// store carried out in parts and that failed part-way, so that the caller
// knows what landed. Every key of the batch is in exactly one of the three
// sets. A key is in Failed only when the store is sure the command for it
// was not carried out (the connection could not be set up, or the server
// refused that command); a command that was sent but whose reply was lost
// (a connection reset mid-reply, a deadline) is in Unknown, never in Failed,
// and is not sent again: a BatchError with keys in Unknown matches
// ErrUnknownOutcome.
//
// Stores that write a batch in one transaction (memory, bbolt) fail a batch
// whole and return the cause itself, not a BatchError: nothing was written.
// A decorator that renames keys (the namespace layer) returns the keys as
// its caller named them.
type BatchError struct {
	// Op is "write" (MSet), "delete" (Delete) or "store" (Lease.Store).
	Op string
	// Written holds the keys whose command the store acknowledged.
	Written []string
	// Failed holds the keys whose command certainly did not happen.
	Failed []string
	// Unknown holds the keys whose command may or may not have happened.
	Unknown []string
	// Err is the first cause; errors.Is and errors.As see through to it.
	Err error
}

// Error implements error. It counts the keys and names none of them.
func (e *BatchError) Error() string {
	n := len(e.Written) + len(e.Failed) + len(e.Unknown)
	return fmt.Sprintf("%s of %d keys failed part-way (%d done, %d not done, %d unknown): %v",
		e.Op, n, len(e.Written), len(e.Failed), len(e.Unknown), e.Err)
}

// Unwrap returns the first cause.
func (e *BatchError) Unwrap() error { return e.Err }

// Is reports a batch with keys in Unknown as ErrUnknownOutcome, so that
// errors.Is(err, ErrUnknownOutcome) tells a batch that may have been applied
// in part beyond Written, whatever its first cause.
func (e *BatchError) Is(target error) bool {
	return target == ErrUnknownOutcome && len(e.Unknown) > 0
}

// MapKeys returns a copy of e with every key passed through f, as a
// decorator that renames keys returns it to its caller.
func (e *BatchError) MapKeys(f func(string) string) *BatchError {
	m := func(keys []string) []string {
		if keys == nil {
			return nil
		}
		out := make([]string, len(keys))
		for i, k := range keys {
			out[i] = f(k)
		}
		return out
	}
	return &BatchError{Op: e.Op, Written: m(e.Written), Failed: m(e.Failed), Unknown: m(e.Unknown), Err: e.Err}
}
