#!/usr/bin/env bash
# koi against etcd in one run on this machine: a 3-member etcd (Debian's etcd-server, data on
# disk, default durability) and a 3-node koi cluster (from source, through `koi admin` with a
# generated one-cluster config, data on disk), both on free loopback ports. Two parts:
#
# 1. wrk as the neutral load generator: the same keys (bench-0 .. bench-<KEYS-1>, preloaded
#    with 100-byte values) and workloads sent to each system's leader: durable writes (W),
#    linearizable reads (C) and stale / serializable reads (S), at 16 and 64 connections.
# 2. `koi bench load`, the same code driving both through its LoadTarget interface: koi
#    through its routing client (the admin's routing table), etcd through npm etcd3 over gRPC
#    to its leader (as koi's client sends to its leader); YCSB workloads A, B, C and W,
#    zipfian over user0 .. user<KEYS-1> (preloaded once per system with --preload), the same
#    --seed and --keys for both, at 16 and 64 clients, read back from --json.
#
# Each part alternates the two systems, twice (etcd first in round 1, koi first in round 2),
# and prints its numbers side by side and one line per workload and client count for scripts:
#   WRK workload=<W|C|S> clients=<n> koi_ops=<x> etcd_ops=<y> ratio=<x/y> koi_p99_ms=<a> etcd_p99_ms=<b>
#   RATIO workload=<A|B|C|W> clients=<n> koi_ops=<x> etcd_ops=<y> ratio=<x/y> koi_p99_ms=<a> etcd_p99_ms=<b>
# (the best of the two rounds for ops/s, and its p99). Every process is stopped by its PID:
# etcd's members, and the admin, which stops its nodes.
#
#   bash bench/compare_etcd.sh [seconds per run, default 10]   (needs etcd, wrk, curl)
#   QUICK=1 bash bench/compare_etcd.sh     1 s runs over 1000 keys, to see that it works
# Environment: KEYS (default 10000; QUICK 1000), SEED (default 42), WARMUP (seconds of load
# before each koi bench load run is measured, default 1; QUICK 0.2). The full run takes about
# 11 minutes (24 wrk runs and 32 load runs of 10 s, each load run a second more).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/_deno.sh
source "$ROOT/scripts/_deno.sh"
# shellcheck source=bench/_lib.sh
source "$ROOT/bench/_lib.sh"
if [ "${QUICK:-0}" = 1 ]; then
  SECS=${1:-1}
  KEYS=${KEYS:-1000}
  WARMUP=${WARMUP:-0.2}
else
  SECS=${1:-10}
  KEYS=${KEYS:-10000}
  WARMUP=${WARMUP:-1}
fi
SEED=${SEED:-42}
for tool in etcd wrk curl; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "$tool is not installed: apt-get install -y etcd-server wrk curl" >&2
    exit 2
  fi
done
koi_find_deno "$ROOT"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/koi-vs-etcd.XXXXXX")
PIDS=()
ADMIN_PID=""
cleanup() {
  if [ -n "$ADMIN_PID" ]; then # SIGTERM: the admin stops its nodes by PID (SIGKILL after 12 s)
    kill -TERM "$ADMIN_PID" 2>/dev/null || true
    for _ in $(seq 1 150); do koi_running "$ADMIN_PID" || break; sleep 0.1; done
    kill -9 "$ADMIN_PID" 2>/dev/null || true # its nodes then see their stdin end and stop
    wait "$ADMIN_PID" 2>/dev/null || true
  fi
  for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

read -r -a P <<<"$(koi_free_ports 13)"

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

# --- koi: one cluster of three nodes, started by `koi admin`, which also serves the routing
# table that koi's client (koi bench load) needs
ADMIN_URL="http://127.0.0.1:${P[12]}"
koi_one_cluster_config "${P[12]}" "${P[@]:6:6}" >"$WORK/config.toml"
"$DENO" run -A --config "$ROOT/deno.json" "$ROOT/cli.ts" admin --config "$WORK/config.toml" \
  >"$WORK/admin.log" 2>&1 &
ADMIN_PID=$!

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
    l=$(curl -sf "$ADMIN_URL/healthz" | sed -n 's/.*"a":"a\([0-9]\)".*/\1/p' || true)
    [ -n "$l" ] && KOI_URL="http://127.0.0.1:${P[$((7 + (l - 1) * 2))]}"
  fi
  [ -n "$ETCD_URL" ] && [ -n "$KOI_URL" ] && break
  koi_running "$ADMIN_PID" || break
  sleep 0.2
done
[ -n "$ETCD_URL" ] || { echo "etcd elected no leader" >&2; tail -5 "$WORK"/e*.log >&2; exit 1; }
[ -n "$KOI_URL" ] || { echo "koi elected no leader" >&2; tail -20 "$WORK/admin.log" >&2; exit 1; }
ETCD_VERSION=$(etcd --version | head -1 | awk '{print $3}')
echo "etcd $ETCD_VERSION leader $ETCD_URL; koi leader $KOI_URL (admin $ADMIN_URL)"
echo "== wrk: $SECS s per run, 100-byte values, keys uniform over $KEYS (preloaded), wrk -t2"

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

# Results by "<part>/<sys>/<workload>/<clients>": the best ops/s of the rounds, its p99, and
# the errors of all rounds.
declare -A OPS=() P99=() ERRS=() CPU=()
record() { # part sys workload clients ops p99 errors [server CPU ms per request]
  local key="$1/$2/$3/$4"
  if [ -z "${OPS[$key]:-}" ] || [ "$5" -gt "${OPS[$key]}" ]; then
    OPS[$key]=$5
    P99[$key]=$6
    CPU[$key]=${8:-}
  fi
  ERRS[$key]=$((${ERRS[$key]:-0} + $7))
  printf '  round %s  %-4s %-5s %3s clients  %8s ops/s  p99 %8s ms  errors %s%s\n' \
    "$ROUND" "$2" "$3" "$4" "$5" "$6" "$7" "${8:+  server CPU ${8} ms per request}"
}
TICKS=$(getconf CLK_TCK)
# The CPU ticks (user + system) of a system's server processes: etcd's members, koi's nodes.
server_ticks() {
  # shellcheck disable=SC2046
  if [ "$1" = etcd ]; then koi_cpu_ticks "${PIDS[@]}"; else koi_cpu_ticks $(ps --ppid "$ADMIN_PID" -o pid=); fi
}
# part tag errors-word "workload:name"...: the table and one "<tag> workload=…" line each
summarize() {
  local part=$1 tag=$2 what=$3 spec w name c e k ratio
  shift 3
  echo
  printf '| workload | clients | etcd ops/s | koi ops/s | koi/etcd | etcd p99 ms | koi p99 ms |\n'
  printf '| --- | --- | --- | --- | --- | --- | --- |\n'
  for spec in "$@"; do
    w=${spec%%:*}
    name=${spec#*:}
    for c in 16 64; do
      e=${OPS[$part/etcd/$w/$c]}
      k=${OPS[$part/koi/$w/$c]}
      ratio=$(awk -v k="$k" -v e="$e" 'BEGIN { printf "%.2f", (e > 0 ? k / e : 0) }')
      printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$name" "$c" "$e" "$k" "$ratio" \
        "${P99[$part/etcd/$w/$c]}" "${P99[$part/koi/$w/$c]}"
    done
  done
  echo
  for spec in "$@"; do
    w=${spec%%:*}
    for c in 16 64; do
      e=${OPS[$part/etcd/$w/$c]}
      k=${OPS[$part/koi/$w/$c]}
      ratio=$(awk -v k="$k" -v e="$e" 'BEGIN { printf "%.2f", (e > 0 ? k / e : 0) }')
      echo "$tag workload=$w clients=$c koi_ops=$k etcd_ops=$e ratio=$ratio koi_p99_ms=${P99[$part/koi/$w/$c]} etcd_p99_ms=${P99[$part/etcd/$w/$c]}"
    done
  done
  for key in "${!ERRS[@]}"; do
    if [ "${key%%/*}" = "$part" ] && [ "${ERRS[$key]}" -gt 0 ]; then
      echo "note: $key had ${ERRS[$key]} $what" >&2
    fi
  done
}
# Both parts: per round, per client count, per workload, both systems (the order alternates).
rounds() { # run-function workloads...
  local fn=$1 c w
  shift
  for ROUND in 1 2; do
    for c in 16 64; do
      for w in "$@"; do
        if [ "$ROUND" = 1 ]; then "$fn" etcd "$w" "$c"; "$fn" koi "$w" "$c"; else "$fn" koi "$w" "$c"; "$fn" etcd "$w" "$c"; fi
      done
    done
  done
}

# --- part 1: wrk
to_ms() { # wrk latency "1.23ms" / "850.00us" / "1.02s" -> ms
  awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n = n; else if (v ~ /s$/) n *= 1000; printf "%.2f", n }'
}
wrk_run() { # sys op clients
  local sys=$1 op=$2 c=$3 url out rps p99 errs w t0 t1 cpu
  url=$([ "$sys" = etcd ] && echo "$ETCD_URL" || echo "$KOI_URL")
  t0=$(server_ticks "$sys")
  out=$(KOI_OP=$op KOI_KEYS=$KEYS wrk -t2 -c"$c" -d"${SECS}s" --latency -s "$ROOT/bench/wrk_$sys.lua" "$url")
  t1=$(server_ticks "$sys")
  rps=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' <<<"$out")
  cpu=$(awk -v d=$((t1 - t0)) -v tck="$TICKS" -v r="$rps" -v s="$SECS" \
    'BEGIN { printf "%.3f", (r > 0 ? d / tck * 1000 / (r * s) : 0) }')
  p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' <<<"$out")")
  errs=$(awk '/Non-2xx or 3xx responses:/ { print $5 }' <<<"$out")
  w=$(case $op in put) echo W ;; get) echo C ;; stale) echo S ;; esac)
  record wrk "$sys" "$w" "$c" "$rps" "$p99" "${errs:-0}" "$cpu"
}
rounds wrk_run put get stale
summarize wrk WRK "non-2xx answers" "W:W durable writes" "C:C linearizable reads" \
  "S:S stale / serializable reads"
echo
echo "CPU of the three server processes per request (ms; etcd's members, koi's nodes; best round):"
for w in W C S; do
  for c in 16 64; do
    echo "CPU workload=$w clients=$c koi_ms=${CPU[wrk/koi/$w/$c]} etcd_ms=${CPU[wrk/etcd/$w/$c]}"
  done
done

# --- part 2: koi bench load, the same driver code for both
ETCD_LEADER=${ETCD_URL#http://}
echo
echo "== koi bench load: $SECS s per run after a $WARMUP s warm-up, zipfian over $KEYS keys" \
  "(preloaded), 100-byte values, linearizable reads, seed $SEED; koi through its client," \
  "etcd $ETCD_VERSION through etcd3 (gRPC) to its leader $ETCD_LEADER"
bench_load() { # sys out-file flags...: koi bench load of sys with the common flags, its JSON
  local sys=$1 out=$2
  shift 2
  local target=(--target koi --admin "$ADMIN_URL")
  if [ "$sys" = etcd ]; then target=(--target etcd-grpc --etcd "$ETCD_LEADER"); fi
  "$DENO" run -A --config "$ROOT/deno.json" "$ROOT/cli.ts" bench load "${target[@]}" \
    --keys "$KEYS" --seed "$SEED" --max-error-rate 1 --json "$@" >"$out" 2>"$out.err" || true
}
# file fields...: the fields of a --json report as words (-1 for each when there is none)
report_fields() {
  "$DENO" eval '
    const [file, ...fields] = Deno.args;
    let r;
    try { r = JSON.parse(Deno.readTextFileSync(file)); } catch { r = undefined; }
    const m = r?.measured, p = r?.preload;
    const get = {
      ops: () => Math.round(m.opsPerSecond),
      p99: () => (m.byType.all?.latencyMs.p99 ?? 0).toFixed(2),
      errors: () => m.errors,
      preloadSeconds: () => p.seconds.toFixed(2),
      preloadErrors: () => p.errors,
    };
    console.log(fields.map((f) => { try { return String(get[f]()); } catch { return "-1"; } }).join(" "));
  ' "$@"
}
for sys in etcd koi; do
  bench_load "$sys" "$WORK/preload-$sys.json" --preload --workload C --ops 1 --warmup-seconds 0 \
    --clients 64
  read -r secs errs <<<"$(report_fields "$WORK/preload-$sys.json" preloadSeconds preloadErrors)"
  if [ "$errs" != 0 ]; then
    echo "$sys: the preload failed ($errs errors): $(tail -3 "$WORK/preload-$sys.json.err")" >&2
    exit 1
  fi
  echo "  preload $sys: $KEYS keys in $secs s"
done
load_run() { # sys workload clients
  local sys=$1 w=$2 c=$3 file="$WORK/load-$1-$2-$3-r$ROUND.json" ops p99 errs
  bench_load "$sys" "$file" --workload "$w" --clients "$c" --seconds "$SECS" \
    --warmup-seconds "$WARMUP"
  read -r ops p99 errs <<<"$(report_fields "$file" ops p99 errors)"
  if [ "$errs" = -1 ]; then
    echo "  $sys $w $c: no report: $(tail -3 "$file.err")" >&2
    ops=0
    p99=0
    errs=0
  fi
  record load "$sys" "$w" "$c" "$ops" "$p99" "$errs"
}
rounds load_run A B C W
summarize load RATIO "failed operations" "A:A 50 % reads, 50 % updates" \
  "B:B 95 % reads, 5 % updates" "C:C reads only" "W:W updates only"
exit 0
