#!/usr/bin/env bash
# koi against etcd with wrk as the neutral load generator, in one run on this machine: a
# 3-member etcd (Debian's etcd-server, data on disk, default durability) and a 3-node koi
# cluster (from source, data on disk), both on free loopback ports. Both get the same keys
# (bench-0 .. bench-<KEYS-1>, preloaded with 100-byte values) and the same workloads, sent to
# each system's leader: durable writes (W), linearizable reads (C) and stale / serializable
# reads (S), at 16 and 64 connections, alternating the two systems, twice. Prints wrk's numbers
# side by side and one line per workload and client count for scripts:
#   WRK workload=<W|C|S> clients=<n> koi_ops=<x> etcd_ops=<y> ratio=<x/y> koi_p99_ms=<a> etcd_p99_ms=<b>
# (the best of the two rounds for ops/s, and its p99). Every process is stopped by its PID.
#
#   bash bench/compare_etcd.sh [seconds per run, default 10]   (needs etcd, wrk, curl)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/_deno.sh
source "$ROOT/scripts/_deno.sh"
SECS=${1:-10}
KEYS=${KEYS:-10000}
for tool in etcd wrk curl; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "$tool is not installed: apt-get install -y etcd-server wrk curl" >&2
    exit 2
  fi
done
koi_find_deno "$ROOT"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/koi-vs-etcd.XXXXXX")
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

read -r -a P <<<"$("$DENO" eval '
  const ls = Array.from({ length: 13 }, () => Deno.listen({ hostname: "127.0.0.1", port: 0 }));
  console.log(ls.map((l) => l.addr.port).join(" ")); for (const l of ls) l.close();')"

# --- etcd: three members
CLUSTER="e1=http://127.0.0.1:${P[1]},e2=http://127.0.0.1:${P[3]},e3=http://127.0.0.1:${P[5]}"
for i in 1 2 3; do
  c=${P[$(((i - 1) * 2))]}
  p=${P[$(((i - 1) * 2 + 1))]}
  etcd --name "e$i" --data-dir "$WORK/etcd/e$i" \
    --listen-client-urls "http://127.0.0.1:$c" --advertise-client-urls "http://127.0.0.1:$c" \
    --listen-peer-urls "http://127.0.0.1:$p" --initial-advertise-peer-urls "http://127.0.0.1:$p" \
    --initial-cluster "$CLUSTER" --initial-cluster-state new --initial-cluster-token koi-bench \
    --log-level error --logger zap >"$WORK/e$i.log" 2>&1 &
  PIDS+=($!)
done
ETCD_ENDPOINTS="127.0.0.1:${P[0]},127.0.0.1:${P[2]},127.0.0.1:${P[4]}"

# --- koi: one cluster of three nodes
{
  printf '[admin]\nhttp = "127.0.0.1:%s"\n[[clusters]]\nid = "a"\n' "${P[12]}"
  for i in 1 2 3; do
    printf '[[clusters.nodes]]\nid = "a%s"\nraft = "127.0.0.1:%s"\nhttp = "127.0.0.1:%s"\ndata = "data/a%s"\n' \
      "$i" "${P[$((6 + (i - 1) * 2))]}" "${P[$((7 + (i - 1) * 2))]}" "$i"
  done
} >"$WORK/config.toml"
for i in 1 2 3; do
  "$DENO" run -A --config "$ROOT/deno.json" "$ROOT/cli.ts" node --config "$WORK/config.toml" \
    --id "a$i" >"$WORK/a$i.log" 2>&1 &
  PIDS+=($!)
done

# --- leaders
ETCD_URL=""
KOI_URL=""
for _ in $(seq 1 300); do
  if [ -z "$ETCD_URL" ]; then
    lead=$(ETCDCTL_API=3 etcdctl --endpoints="$ETCD_ENDPOINTS" endpoint status 2>/dev/null |
      awk -F', ' '$5 == "true" { print $1 }' || true)
    [ -n "$lead" ] && ETCD_URL="http://$lead"
  fi
  if [ -z "$KOI_URL" ]; then
    l=$(curl -sf "http://127.0.0.1:${P[7]}/v1/status" | sed -n 's/.*"leader":"a\([0-9]\)".*/\1/p' || true)
    [ -n "$l" ] && KOI_URL="http://127.0.0.1:${P[$((7 + (l - 1) * 2))]}"
  fi
  [ -n "$ETCD_URL" ] && [ -n "$KOI_URL" ] && break
  sleep 0.2
done
[ -n "$ETCD_URL" ] || { echo "etcd elected no leader" >&2; tail -5 "$WORK"/e*.log >&2; exit 1; }
[ -n "$KOI_URL" ] || { echo "koi elected no leader" >&2; tail -5 "$WORK"/a*.log >&2; exit 1; }
echo "etcd $(etcd --version | head -1 | awk '{print $3}') leader $ETCD_URL; koi leader $KOI_URL"
echo "$SECS s per run, 100-byte values, keys uniform over $KEYS (preloaded), wrk -t2"

# --- preload both with every key (64 concurrent writers), so that reads always find their key
"$DENO" eval "
  const keys = $KEYS, value = 'v'.repeat(100);
  const b64 = (s) => btoa(s);
  const put = {
    etcd: (k) => fetch('$ETCD_URL/v3/kv/put', { method: 'POST',
      body: JSON.stringify({ key: b64(k), value: b64(value) }) }),
    koi: (k) => fetch('$KOI_URL/v1/kv/' + k, { method: 'PUT', body: value }),
  };
  for (const sys of ['etcd', 'koi']) {
    let next = 0, failed = 0;
    await Promise.all(Array.from({ length: 64 }, async () => {
      while (next < keys) {
        const r = await put[sys]('bench-' + next++);
        await r.body?.cancel();
        if (!r.ok) failed++;
      }
    }));
    if (failed > 0) { console.error(sys + ': ' + failed + ' preload writes failed'); Deno.exit(1); }
  }
"

# --- runs: per round, per client count, per workload, both systems (order alternates)
declare -A OPS=() P99=() ERRS=()
to_ms() { # wrk latency "1.23ms" / "850.00us" / "1.02s" -> ms
  awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n = n; else if (v ~ /s$/) n *= 1000; printf "%.2f", n }'
}
run() { # sys op clients
  local sys=$1 op=$2 c=$3 url out
  url=$([ "$sys" = etcd ] && echo "$ETCD_URL" || echo "$KOI_URL")
  out=$(KOI_OP=$op KOI_KEYS=$KEYS wrk -t2 -c"$c" -d"${SECS}s" --latency -s "$ROOT/bench/wrk_$sys.lua" "$url")
  local rps p99 errs
  rps=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' <<<"$out")
  p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' <<<"$out")")
  errs=$(awk '/Non-2xx or 3xx responses:/ { print $5 }' <<<"$out")
  local key="$sys/$op/$c"
  if [ -z "${OPS[$key]:-}" ] || [ "$rps" -gt "${OPS[$key]}" ]; then
    OPS[$key]=$rps
    P99[$key]=$p99
  fi
  ERRS[$key]=$((${ERRS[$key]:-0} + ${errs:-0}))
  printf '  round %s  %-4s %-5s %3s conns  %8s ops/s  p99 %8s ms  non-2xx %s\n' \
    "$ROUND" "$sys" "$op" "$c" "$rps" "$p99" "${errs:-0}"
}
for ROUND in 1 2; do
  for c in 16 64; do
    for op in put get stale; do
      if [ "$ROUND" = 1 ]; then run etcd "$op" "$c"; run koi "$op" "$c"; else run koi "$op" "$c"; run etcd "$op" "$c"; fi
    done
  done
done

echo
printf '| workload | clients | etcd ops/s | koi ops/s | koi/etcd | etcd p99 ms | koi p99 ms |\n'
printf '| --- | --- | --- | --- | --- | --- | --- |\n'
for op in put get stale; do
  name=$(case $op in put) echo "W durable writes" ;; get) echo "C linearizable reads" ;; stale) echo "S stale / serializable reads" ;; esac)
  for c in 16 64; do
    e=${OPS[etcd/$op/$c]}
    k=${OPS[koi/$op/$c]}
    ratio=$(awk -v k="$k" -v e="$e" 'BEGIN { printf "%.2f", (e > 0 ? k / e : 0) }')
    printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$name" "$c" "$e" "$k" "$ratio" "${P99[etcd/$op/$c]}" "${P99[koi/$op/$c]}"
  done
done
echo
for op in put get stale; do
  w=$(case $op in put) echo W ;; get) echo C ;; stale) echo S ;; esac)
  for c in 16 64; do
    e=${OPS[etcd/$op/$c]}
    k=${OPS[koi/$op/$c]}
    echo "WRK workload=$w clients=$c koi_ops=$k etcd_ops=$e ratio=$(awk -v k="$k" -v e="$e" 'BEGIN { printf "%.2f", (e > 0 ? k / e : 0) }') koi_p99_ms=${P99[koi/$op/$c]} etcd_p99_ms=${P99[etcd/$op/$c]}"
  done
done
for key in "${!ERRS[@]}"; do
  [ "${ERRS[$key]}" -gt 0 ] && echo "note: $key had ${ERRS[$key]} non-2xx answers" >&2
done
exit 0
