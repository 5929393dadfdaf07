#!/usr/bin/env bash
# A koi node's cost as its state grows: one 3-node cluster started by `koi admin` (from
# source, data on disk, on free loopback ports). Prints each node's RSS and V8 heap when idle,
# then, after writing 10^4, 10^5 and (FULL=1) 10^6 keys of 100 bytes (`koi bench load
# --preload`), the RSS and heap with the bytes per key above the idle node and the state's
# own bytes per key, and the write throughput and p99 of 5 s of updates uniform over those
# keys (workload W, 64 clients), to see whether writes slow down as the state grows; then,
# after SETTLE_SECONDS (default 20) without load, the same figures again ("settled").
#
#   bash bench/state_size.sh            (10^4 and 10^5 keys, about 1.5 minutes)
#   FULL=1 bash bench/state_size.sh     (also 10^6 keys, about 6 more minutes)
#   SIZES="10000 50000" bash bench/state_size.sh
#
# Node flags for experiments go through the environment: DENO_V8_FLAGS=--max-semi-space-size=4.
#
# Stops everything by PID: the admin, which stops its nodes.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/_deno.sh
source "$ROOT/scripts/_deno.sh"
# shellcheck source=bench/_lib.sh
source "$ROOT/bench/_lib.sh"
koi_find_deno "$ROOT"
command -v curl >/dev/null || { echo "curl is not installed: apt-get install -y curl" >&2; exit 2; }
WORK=$(mktemp -d "${TMPDIR:-/tmp}/koi-state-size.XXXXXX")
ADMIN_PID=""
cleanup() {
  if [ -n "$ADMIN_PID" ]; then koi_stop_admin "$ADMIN_PID"; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

read -r -a P <<<"$(koi_free_ports 7)"
ADMIN_URL="http://127.0.0.1:${P[6]}"
koi_one_cluster_config "${P[6]}" "${P[@]:0:6}" >"$WORK/config.toml"
"$DENO" run -A --config "$ROOT/deno.json" "$ROOT/cli.ts" admin --config "$WORK/config.toml" \
  >"$WORK/admin.log" 2>&1 &
ADMIN_PID=$!
for _ in $(seq 1 300); do
  curl -sf "$ADMIN_URL/healthz" | grep -q '"a":"a' && break
  koi_running "$ADMIN_PID" || { tail -20 "$WORK/admin.log" >&2; exit 1; }
  sleep 0.2
done
http_of() { echo "http://127.0.0.1:${P[$((($1 - 1) * 2 + 1))]}"; }
SECRET=$(cat "$WORK/data/admin/secret") # the admin generated it; /metrics asks for it
metric() {
  curl -sf -H "authorization: Bearer $SECRET" "$(http_of "$1")/metrics" |
    sed -n "s/^koi_$2{[^}]*} //p"
}

report() { # label keys
  local label=$1 keys=$2
  for i in 1 2 3; do
    local rss heap total ext state
    rss=$(metric "$i" process_rss_bytes)
    heap=$(metric "$i" process_heap_used_bytes)
    total=$(metric "$i" process_heap_total_bytes)
    ext=$(metric "$i" process_external_bytes)
    state=$(metric "$i" state_bytes)
    local per="-" statePer="-"
    if [ "$keys" -gt 0 ]; then
      per=$(awk "BEGIN{printf \"%.0f\", ($rss - ${IDLE[$i]}) / $keys}")
      statePer=$(awk "BEGIN{printf \"%.0f\", $state / $keys}")
    fi
    printf '%-14s a%s  rss %7.1f MB  heap %6.1f MB used of %6.1f  external %6.1f MB  rss/key above idle %5s B  data/key %4s B\n' \
      "$label" "$i" "$(awk "BEGIN{print $rss / 1e6}")" "$(awk "BEGIN{print $heap / 1e6}")" \
      "$(awk "BEGIN{print $total / 1e6}")" "$(awk "BEGIN{print $ext / 1e6}")" "$per" "$statePer"
  done
}

sleep 3 # the nodes settle (their first snapshot checks, the admin's polls)
declare -A IDLE=()
for i in 1 2 3; do IDLE[$i]=$(metric "$i" process_rss_bytes); done
report idle 0
read -r -a SIZES <<<"${SIZES:-10000 100000}"
[ "${FULL:-}" = 1 ] && SIZES+=(1000000)
load() { # keys flags...: koi bench load through the admin; prints "<ops/s> <p99 ms> <errors>"
  local n=$1
  shift
  CI=true "$DENO" run -A --config "$ROOT/deno.json" "$ROOT/cli.ts" bench load --admin "$ADMIN_URL" \
    --keys "$n" --clients 64 --seed 7 --max-error-rate 1 --json "$@" >"$WORK/load.json"
  koi_load_summary "$WORK/load.json"
}
declare -a THROUGHPUT=()
for n in "${SIZES[@]}"; do
  load "$n" --workload C --preload --seconds 1 --warmup-seconds 0 >/dev/null
  sleep 2 # background snapshots of the new state finish
  report "$n" "$n"
  read -r ops p99 errors <<<"$(load "$n" --workload W --distribution uniform --seconds 5)"
  THROUGHPUT+=("$(printf '%-8s writes %6s ops/s  p99 %6s ms  errors %s' "$n" "$ops" "$p99" "$errors")")
  # Right after the load the heap still holds its garbage and V8 has not shrunk it: the
  # figure a node settles at, with no load, comes after a quiet while.
  sleep "${SETTLE_SECONDS:-20}"
  report "$n settled" "$n"
done
echo "write throughput by state size (W, uniform over the keys, 64 clients, 5 s):"
printf '  %s\n' "${THROUGHPUT[@]}"
