#!/usr/bin/env bash
# Starts or stops a Redis Cluster of three masters on loopback ports, for the
# real-cluster tests (KV_REDIS_CLUSTER_ADDRS).
#
#   scripts/redis-cluster.sh start   # prints the addresses, comma-separated
#   scripts/redis-cluster.sh stop
#
# KV_CLUSTER_PORTS (default: the first free set of 7401-7403, 7501-7503, ...,
# 7901-7903, each port's cluster-bus port +10000 free too) and KV_CLUSTER_DIR (default .cluster in the repository) change
# where it runs. KV_CLUSTER_REPLICAS=1 gives each master a replica (six nodes:
# the default ports are then 7401-7406, 7501-7506, ...), for failover tests. Every node
# writes its pid to KV_CLUSTER_DIR/PORT/pid. Exits non-zero when the cluster
# cannot be started.
set -euo pipefail

dir=${KV_CLUSTER_DIR:-"$(cd "$(dirname "$0")/.." && pwd)/.cluster"}
replicas=${KV_CLUSTER_REPLICAS:-0}
case "$replicas" in 0|1) ;; *) echo "KV_CLUSTER_REPLICAS must be 0 or 1" >&2; exit 2 ;; esac
nodes_wanted=$((3 * (replicas + 1)))

in_use() { redis-cli -h 127.0.0.1 -p "$1" ping >/dev/null 2>&1 || (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# The ports: KV_CLUSTER_PORTS, else those a running cluster of this directory
# uses, else the first set of 7401-7403, 7501-7503, ... whose ports and bus
# ports (+10000) are all free.
if [ -n "${KV_CLUSTER_PORTS:-}" ]; then
  ports=($KV_CLUSTER_PORTS)
elif [ -f "$dir/ports" ]; then
  ports=($(cat "$dir/ports"))
else
  ports=($(seq 7401 $((7400 + nodes_wanted))))
  if [ "${1:-}" = start ]; then
    for base in 7401 7501 7601 7701 7801 7901; do
      ports=($(seq "$base" $((base + nodes_wanted - 1))))
      busy=0
      for p in "${ports[@]}"; do in_use "$p" && busy=1; in_use $((p + 10000)) && busy=1; done
      [ "$busy" = 0 ] && break
    done
  fi
fi

addrs() {
  local out=()
  for p in "${ports[@]}"; do out+=("127.0.0.1:$p"); done
  (IFS=,; echo "${out[*]}")
}

stop() {
  for p in "${ports[@]}"; do
    local pidfile="$dir/$p/pid"
    if [ -f "$pidfile" ]; then
      local pid
      pid=$(cat "$pidfile")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
  done
  rm -rf "$dir"
}

start() {
  command -v redis-server >/dev/null || { echo "redis-server is not installed" >&2; exit 1; }
  command -v redis-cli >/dev/null || { echo "redis-cli is not installed" >&2; exit 1; }
  stop
  mkdir -p "$dir"
  echo "${ports[*]}" >"$dir/ports"
  for p in "${ports[@]}"; do
    if in_use "$p"; then
      echo "port $p is already in use" >&2; exit 1
    fi
    mkdir -p "$dir/$p"
    (cd "$dir/$p" && redis-server --port "$p" --bind 127.0.0.1 \
      --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 2000 \
      --save '' --appendonly no --daemonize yes --pidfile "$dir/$p/pid" --logfile "$dir/$p/log")
  done
  for p in "${ports[@]}"; do
    for _ in $(seq 100); do
      redis-cli -h 127.0.0.1 -p "$p" ping >/dev/null 2>&1 && break
      sleep 0.05
    done
    redis-cli -h 127.0.0.1 -p "$p" ping >/dev/null 2>&1 || { echo "node $p did not start" >&2; cat "$dir/$p/log" >&2 || true; exit 1; }
  done
  local nodes=()
  for p in "${ports[@]}"; do nodes+=("127.0.0.1:$p"); done
  redis-cli --cluster create "${nodes[@]}" --cluster-replicas "$replicas" --cluster-yes >"$dir/create.log" 2>&1 \
    || { echo "redis-cli --cluster create failed" >&2; cat "$dir/create.log" >&2; exit 1; }
  for _ in $(seq 200); do
    ok=1
    for p in "${ports[@]}"; do
      redis-cli -h 127.0.0.1 -p "$p" cluster info 2>/dev/null | grep -q 'cluster_state:ok' || ok=0
      # a replica counts once it has synced with its master
      if redis-cli -h 127.0.0.1 -p "$p" info replication 2>/dev/null | grep -q 'role:slave'; then
        redis-cli -h 127.0.0.1 -p "$p" info replication 2>/dev/null | grep -q 'master_link_status:up' || ok=0
      fi
    done
    [ "$ok" = 1 ] && { addrs; return 0; }
    sleep 0.1
  done
  echo "the cluster did not reach cluster_state:ok" >&2
  exit 1
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  addrs) addrs ;;
  *) echo "usage: $0 start|stop|addrs" >&2; exit 2 ;;
esac
