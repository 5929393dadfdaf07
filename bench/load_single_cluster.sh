#!/usr/bin/env bash
# Write and read throughput of one 3-node cluster, from source, with wrk (Debian package):
# 64 connections, 100-byte values, unique keys, against the leader. Prints wrk's report and
# the leader's Deno.Kv commits (fsyncs) per Ready batch and writes per batch from /metrics.
#
#   bash bench/load_single_cluster.sh [seconds]        (needs curl and wrk; deno from PATH or npm)
#
# Also prints each node's CPU-seconds per 1000 writes. With PROFILE=1 the nodes run with
# --inspect and the PUT run takes a CPU profile of the leader and of a follower
# (bench/cpu_profile.ts), kept in $PROFILE_DIR (default ./profiles), and after it prints the
# live heap of the leader and of a follower by constructor (bench/heap_profile.ts). With
# KEEP_LOGS=<dir> the nodes' logs are copied there (e.g. with DENO_V8_FLAGS=--trace-gc).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/_deno.sh
source "$ROOT/scripts/_deno.sh"
# shellcheck source=bench/_lib.sh
source "$ROOT/bench/_lib.sh"
koi_find_deno "$ROOT"
SECS=${1:-10}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/koi-load.XXXXXX")
declare -A PIDS=()
cleanup() {
  for id in "${!PIDS[@]}"; do kill -9 "${PIDS[$id]}" 2>/dev/null || true; wait "${PIDS[$id]}" 2>/dev/null || true; done
  if [ -n "${KEEP_LOGS:-}" ]; then mkdir -p "$KEEP_LOGS" && cp "$WORK"/*.log "$KEEP_LOGS"/; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
read -r -a P <<<"$(koi_free_ports 10)"
koi_one_cluster_config "${P[6]}" "${P[@]:0:6}" >"$WORK/config.toml"
http_of() { echo "127.0.0.1:${P[$((($1 - 1) * 2 + 1))]}"; }
for i in 1 2 3; do
  INSPECT=()
  [ "${PROFILE:-}" = 1 ] && INSPECT=("--inspect=127.0.0.1:${P[$((6 + i))]}")
  "$DENO" run -A "${INSPECT[@]}" --config "$ROOT/deno.json" "$ROOT/cli.ts" node --config "$WORK/config.toml" --id "a$i" \
    >"$WORK/a$i.log" 2>&1 &
  PIDS[$i]=$!
done
LEADER=""
for _ in $(seq 1 300); do
  LEADER=$(curl -sf "http://$(http_of 1)/v1/status" | sed -n 's/.*"leader":"a\([0-9]\)".*/\1/p' || true)
  [ -n "$LEADER" ] && break
  sleep 0.1
done
[ -n "$LEADER" ] || { echo "no leader" >&2; exit 1; }
URL="http://$(http_of "$LEADER")"
echo "leader a$LEADER at $URL; $SECS s per run, 64 connections, 100-byte values"
metric() { curl -sf "$URL/metrics" | sed -n "s/^koi_$1{[^}]*} //p"; }
# Each node's CPU (koi_cpu_ticks) before and after the PUT run.
TICKS=$(getconf CLK_TCK)
p0=$(metric storage_persists_total); c0=$(metric storage_persist_commits_total); w0=$(metric writes)
declare -A CPU0=()
for i in 1 2 3; do CPU0[$i]=$(koi_cpu_ticks "${PIDS[$i]}"); done
echo "== PUT (unique keys)"
if [ "${PROFILE:-}" = 1 ]; then
  PROFILE_DIR=${PROFILE_DIR:-$PWD/profiles}
  mkdir -p "$PROFILE_DIR"
  FOLLOWER=$(( LEADER % 3 + 1 ))
  PROFILERS=()
  for who in "leader:$LEADER" "follower:$FOLLOWER"; do
    name=${who%%:*}; i=${who##*:}
    "$DENO" run -A "$ROOT/bench/cpu_profile.ts" "${P[$((6 + i))]}" "$((SECS - 2))" \
      "$PROFILE_DIR/$name.cpuprofile" 30 >"$PROFILE_DIR/$name.txt" 2>&1 &
    PROFILERS+=($!)
  done
fi
# The leader's CPU by thread (main = JavaScript; tokio-runtime-w / worker threads = Deno's
# I/O and Deno.Kv's SQLite; V8 DefaultWorke = garbage collection and compilation).
thread_ticks() { for t in /proc/"$1"/task/*; do echo "$(awk '{print $14 + $15}' "$t/stat") $(tr ' ' _ <"$t/comm")"; done; }
thread_ticks "${PIDS[$LEADER]}" >"$WORK/threads0"
wrk -t2 -c64 -d"${SECS}s" --latency -s "$ROOT/bench/wrk_put.lua" "$URL"
thread_ticks "${PIDS[$LEADER]}" >"$WORK/threads1"
if [ "${PROFILE:-}" = 1 ]; then wait "${PROFILERS[@]}"; fi
p1=$(metric storage_persists_total); c1=$(metric storage_persist_commits_total); w1=$(metric writes)
echo "leader: $((w1 - w0)) writes in $((p1 - p0)) Ready batches with $((c1 - c0)) Deno.Kv commits" \
  "=> $(awk "BEGIN{printf \"%.2f\", ($c1-$c0)/($p1-$p0)}") fsyncs per batch," \
  "$(awk "BEGIN{printf \"%.1f\", ($w1-$w0)/($p1-$p0)}") writes per batch"
for i in 1 2 3; do
  role=follower; [ "$i" = "$LEADER" ] && role=leader
  echo "a$i ($role): $(awk "BEGIN{printf \"%.3f\", ($(koi_cpu_ticks "${PIDS[$i]}") - ${CPU0[$i]}) / $TICKS * 1000 / ($w1-$w0)}")" \
    "CPU-s per 1000 writes"
done
for i in 1 2 3; do
  role=follower; [ "$i" = "$LEADER" ] && role=leader
  echo "a$i ($role): RSS $(awk '/^VmRSS/ {printf "%.0f MB", $2 / 1024}' "/proc/${PIDS[$i]}/status") after the PUT run"
done
echo "leader CPU by thread during the PUT run (% of one core):"
awk -v secs="$SECS" -v tck="$TICKS" 'NR == FNR { a[NR] = $1; next } { d[$2] += $1 - a[FNR] }
  END { for (k in d) if (d[k] > 0) printf "  %5.1f %%  %s\n", d[k] / tck / secs * 100, k }' \
  "$WORK/threads0" "$WORK/threads1" | sort -rn
if [ "${PROFILE:-}" = 1 ]; then
  for name in leader follower; do echo "== profile of the $name"; cat "$PROFILE_DIR/$name.txt"; done
  for who in "leader:$LEADER" "follower:$FOLLOWER"; do
    echo "== live heap of the ${who%%:*} after the PUT run"
    "$DENO" run -A "$ROOT/bench/heap_profile.ts" "${P[$((6 + ${who##*:}))]}" 25
  done
fi
for k in $(seq 0 999); do echo "read-$k"; done | xargs -P 16 -I{} curl -sf -o /dev/null -X PUT --data-binary "$(printf 'r%.0s' $(seq 1 100))" "$URL/v1/kv/{}"
echo "== GET (linearizable, ReadIndex), 1000 keys"
KOI_KEYS=1000 wrk -t2 -c64 -d"${SECS}s" --latency -s "$ROOT/bench/wrk_get.lua" "$URL"
