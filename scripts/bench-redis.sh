#!/usr/bin/env bash
# Runs the Redis benchmarks of backend/redis the way docs/performance.md
# reports them: the library and its raw baselines in the same process,
# interleaved, N runs (default 10) in each of two placements pinned with
# taskset, then benchstat -col /impl.
#
#   KV_REDIS_ADDR=127.0.0.1:6379 scripts/bench-redis.sh [N] [outdir]
#
# The server at KV_REDIS_ADDR must be a local redis-server (its process is
# pinned to core 0); database 9 (KV_BENCH_DB) must be empty.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-10}
out=${2:-bench-out}
: "${KV_REDIS_ADDR:?set KV_REDIS_ADDR}"
port=${KV_REDIS_ADDR##*:}
pid=$(pgrep -f "redis-server.*:$port" | head -1)
[ -n "$pid" ] || { echo "no local redis-server on port $port" >&2; exit 1; }
command -v benchstat >/dev/null || go install golang.org/x/perf/cmd/benchstat@latest
export PATH="$PATH:$(go env GOPATH)/bin"

mkdir -p "$out"
go test -c -o "$out/redis.test" ./backend/redis/
old=$(taskset -pc "$pid" | awk -F': ' '{print $2}')
trap 'taskset -pc "$old" "$pid" >/dev/null' EXIT
taskset -pc 0 "$pid" >/dev/null

: >"$out/cross.txt"; : >"$out/same.txt"
for i in $(seq "$n"); do
  for placement in cross same; do
    core=1; [ "$placement" = same ] && core=0
    (cd backend/redis &&
      taskset -c "$core" "../../$out/redis.test" -test.run '^$' -test.bench '^Benchmark(Get|Set|SetMany100|GetMany100|GetOrLoadHit|GetConcurrent50|GetAutoPipeline|NearCacheGet|FleetMisses)$' -test.benchtime 300ms &&
      taskset -c "$core" "../../$out/redis.test" -test.run '^$' -test.bench '^BenchmarkNearCacheInvalidation$' -test.benchtime 2000x &&
      taskset -c "$core" "../../$out/redis.test" -test.run '^$' -test.bench '^Benchmark(Iterate100k|Clear100k)$' -test.benchtime 3x
    ) >>"$out/$placement.txt"
  done
  echo "run $i of $n done" >&2
done
for placement in cross same; do
  echo "## $placement"
  benchstat -col /impl "$out/$placement.txt"
done | tee "$out/summary.txt"
