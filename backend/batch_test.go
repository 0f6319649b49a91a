package backend_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/kvmap/kv/backend"
)

// TestBatchErrorUnknownOutcome: a BatchError matches ErrUnknownOutcome
// exactly when some of its keys are unknown, whatever its first cause, and
// still unwraps to that cause.
func TestBatchErrorUnknownOutcome(t *testing.T) {
	cause := errors.New("boom")
	tests := []struct {
		name string
		be   *backend.BatchError
		want bool
	}{
		{"unknown keys", &backend.BatchError{Op: "write", Written: []string{"a"}, Unknown: []string{"b"}, Err: cause}, true},
		{"failed only", &backend.BatchError{Op: "write", Failed: []string{"a"}, Err: cause}, false},
		{"renamed", (&backend.BatchError{Op: "delete", Unknown: []string{"ns:b"}, Err: cause}).MapKeys(func(k string) string { return k[3:] }), true},
	}
	for _, tt := range tests {
		err := fmt.Errorf("wrapped: %w", tt.be)
		if got := errors.Is(err, backend.ErrUnknownOutcome); got != tt.want {
			t.Errorf("%s: errors.Is(ErrUnknownOutcome) = %v; want %v", tt.name, got, tt.want)
		}
		if !errors.Is(err, cause) {
			t.Errorf("%s: errors.Is(cause) = false; want true", tt.name)
		}
	}
}
