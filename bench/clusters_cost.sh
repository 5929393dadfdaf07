#!/usr/bin/env bash
# What the same work costs as the deployment grows: for 1, 3 and 9 clusters of 3 nodes each
# (started by `koi admin` from source, on free loopback ports, data on disk), the same
# `koi bench load` run (workload W: 100-byte updates, uniform over 10,000 keys, 64 clients,
# OPS operations, default 20,000), and the CPU-seconds every node process used per 1,000
# operations, with the throughput and p99. On this machine every node shares the same two
# cores: this shows the cost curve (more processes, more heartbeats, smaller batches per
# cluster), not a speed-up.
#
#   bash bench/clusters_cost.sh            (about 3 minutes)
#   COUNTS="1 3" OPS=5000 bash bench/clusters_cost.sh
#
# Stops everything by PID: each admin, which stops its nodes.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/_deno.sh
source "$ROOT/scripts/_deno.sh"
# shellcheck source=bench/_lib.sh
source "$ROOT/bench/_lib.sh"
koi_find_deno "$ROOT"
command -v curl >/dev/null || { echo "curl is not installed: apt-get install -y curl" >&2; exit 2; }
OPS=${OPS:-20000}
read -r -a COUNTS <<<"${COUNTS:-1 3 9}"
TICKS=$(getconf CLK_TCK)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/koi-clusters-cost.XXXXXX")
ADMIN_PID=""
stop_admin() {
  [ -n "$ADMIN_PID" ] || return 0
  koi_stop_admin "$ADMIN_PID"
  ADMIN_PID=""
}
cleanup() {
  stop_admin
  rm -rf "$WORK"
}
trap cleanup EXIT
# The CPU ticks of the admin's children: the nodes.
node_ticks() {
  # shellcheck disable=SC2046
  koi_cpu_ticks $(ps --ppid "$ADMIN_PID" -o pid=)
}

RESULTS=()
for n in "${COUNTS[@]}"; do
  dir="$WORK/$n"
  mkdir -p "$dir"
  read -r -a P <<<"$(koi_free_ports $((n * 6 + 1)))"
  admin_port=${P[$((n * 6))]}
  {
    printf '[admin]\nhttp = "127.0.0.1:%s"\n' "$admin_port"
    for c in $(seq 0 $((n - 1))); do
      printf '[[clusters]]\nid = "c%s"\n' "$c"
      for i in 0 1 2; do
        k=$(((c * 3 + i) * 2))
        printf '[[clusters.nodes]]\nid = "c%sn%s"\nraft = "127.0.0.1:%s"\nhttp = "127.0.0.1:%s"\ndata = "data/c%sn%s"\n' \
          "$c" "$i" "${P[$k]}" "${P[$((k + 1))]}" "$c" "$i"
      done
    done
  } >"$dir/config.toml"
  "$DENO" run -A --config "$ROOT/deno.json" "$ROOT/cli.ts" admin --config "$dir/config.toml" \
    >"$dir/admin.log" 2>&1 &
  ADMIN_PID=$!
  url="http://127.0.0.1:$admin_port"
  healthy=""
  for _ in $(seq 1 600); do
    if curl -sf "$url/healthz" >/dev/null 2>&1; then healthy=1; break; fi
    koi_running "$ADMIN_PID" || break
    sleep 0.2
  done
  [ -n "$healthy" ] || { echo "$n clusters did not become healthy" >&2; tail -20 "$dir/admin.log" >&2; exit 1; }
  sleep 2 # every node settled (first snapshots, the admin's polls)
  t0=$(node_ticks)
  CI=true "$DENO" run -A --config "$ROOT/deno.json" "$ROOT/cli.ts" bench load --admin "$url" \
    --workload W --distribution uniform --keys 10000 --clients 64 --ops "$OPS" \
    --warmup-seconds 0 --seed 7 --max-error-rate 1 --json >"$dir/load.json"
  t1=$(node_ticks)
  read -r ops p99 errors <<<"$(koi_load_summary "$dir/load.json")"
  cpu=$(awk "BEGIN{printf \"%.3f\", ($t1 - $t0) / $TICKS * 1000 / $OPS}")
  RESULTS+=("$(printf '%2s clusters (%2s nodes): %6s CPU-s per 1000 writes, %6s writes/s, p99 %6s ms, errors %s' \
    "$n" "$((n * 3))" "$cpu" "$ops" "$p99" "$errors")")
  echo "${RESULTS[-1]}"
  stop_admin
done
echo "== the nodes' CPU per 1000 writes by cluster count (W, 64 clients, $OPS writes)"
printf '%s\n' "${RESULTS[@]}"
