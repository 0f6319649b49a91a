package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"Name": "Set signal_cache"`, `"Name": "Get signal_cache"`, `"Name": "GetOrLoad signal_cache"`,
		`"Name": "mongo findOne"`, `"Name": "Iterate signal_cache"`, `"Name": "backtest tick"`, `"kv.hit"`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the trace does not show %s", want)
		}
	}
}
