package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestRun checks what a newcomer sees: a service name, the span tree with
// the Map's spans under the parent (the database call under GetOrLoad), and
// the histogram and hit counter with their attributes.
func TestRun(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), &out); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{
		"service.name=signal-service",
		"backtest tick  [internal",
		"\n    Set signal_cache  [internal",
		"\n    Get signal_cache  [internal",
		"\n    GetOrLoad signal_cache  [internal",
		"\n        mongo findOne  [internal",
		"\n    Iterate signal_cache  [internal",
		"kv.hit=false",
		"db.client.operation.duration (s)",
		"kv.client.lookups ({lookup})",
		"db.operation.name=Get",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the output does not show %q:\n%s", want, got)
		}
	}
	if lines := strings.Count(got, "\n"); lines > 60 {
		t.Errorf("the output has %d lines; a newcomer should read it at a glance", lines)
	}
}
