#!/usr/bin/env bash
# Runs the bbolt benchmarks of backend/bolt and the telemetry overhead
# benchmark of the root package the way docs/performance.md reports them:
# library and raw bbolt in the same process, N runs (default 10), then
# benchstat -col /impl (and /otel).
#
#   scripts/bench-bolt.sh [N] [outdir]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-10}
out=${2:-bench-out}
command -v benchstat >/dev/null || go install golang.org/x/perf/cmd/benchstat@latest
export PATH="$PATH:$(go env GOPATH)/bin"
mkdir -p "$out"
go test -c -o "$out/bolt.test" ./backend/bolt/
go test -c -o "$out/kv.test" .
: >"$out/bolt.txt"; : >"$out/otel.txt"
for i in $(seq "$n"); do
  (cd backend/bolt &&
    "../../$out/bolt.test" -test.run '^$' -test.bench '^Benchmark(Set|SetMany100|Get)$' -test.benchtime 300ms &&
    "../../$out/bolt.test" -test.run '^$' -test.bench '^Benchmark(Iterate100k|Clear100k)$' -test.benchtime 3x
  ) >>"$out/bolt.txt"
  "$out/kv.test" -test.run '^$' -test.bench '^BenchmarkGetTelemetry$' -test.benchtime 300ms >>"$out/otel.txt"
  echo "run $i of $n done" >&2
done
{
  echo "## bbolt"; benchstat -col /impl "$out/bolt.txt"
  echo "## telemetry, memory Get"; benchstat -col /otel "$out/otel.txt"
} | tee "$out/summary-bolt.txt"
