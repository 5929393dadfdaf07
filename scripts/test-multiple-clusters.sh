#!/usr/bin/env bash
# The sharded deployment end to end, from source: starts the admin on the default config.toml
# (3 clusters of 3 nodes) moved to free ports, writes 1,000 keys through the routing client,
# prints the keys per cluster, kills the leader of every cluster with SIGKILL, checks that
# every key still reads back and that the admin restarted the killed nodes, grows the
# deployment to 4 clusters and back to 3 with `koi admin reshard` while clients write (every
# acknowledged write read back afterwards), prints `koi client status`, and stops the admin
# (which stops its nodes). Every process is stopped
# by its PID on exit, also on failure. Exits non-zero when any check fails.
#
#   bash scripts/test-multiple-clusters.sh          (deno from PATH, $DENO, or npm)
#   KEYS=10000 bash scripts/test-multiple-clusters.sh
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/_deno.sh
source "$ROOT/scripts/_deno.sh"
koi_find_deno "$ROOT"
KEYS=${KEYS:-1000}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/koi-multi-cluster.XXXXXX")
ADMIN_PID=""
koi() { "$DENO" run -A --config "$ROOT/deno.json" "$ROOT/cli.ts" "$@"; }

cleanup() {
  local status=$?
  if [ -n "$ADMIN_PID" ]; then
    kill -9 "$ADMIN_PID" 2>/dev/null || true
    wait "$ADMIN_PID" 2>/dev/null || true
  fi
  # The nodes stop when their admin dies (their stdin closes); any left are stopped by PID.
  if [ -f "$WORK/pids" ]; then
    while read -r pid; do
      [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
    done <"$WORK/pids"
  fi
  if [ "$status" -ne 0 ]; then
    echo "--- last admin output ---" >&2
    tail -n 30 "$WORK/admin.log" >&2 2>/dev/null || true
    echo "FAILED" >&2
  fi
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT

"$DENO" run -A --config "$ROOT/deno.json" "$ROOT/scripts/free_ports_config.ts" \
  --from "$ROOT/config.toml" --dir "$WORK" >/dev/null
ADMIN_URL="http://$(sed -n '/^\[admin\]/,/^\[/s/^http = "\(.*\)"/\1/p' "$WORK/config.toml")"

# Started directly (not through the koi function) so that $! is the admin's own PID.
"$DENO" run -A --config "$ROOT/deno.json" "$ROOT/cli.ts" admin --config "$WORK/config.toml" \
  >"$WORK/admin.log" 2>&1 &
ADMIN_PID=$!
echo "admin started (pid $ADMIN_PID) at $ADMIN_URL"

# Wait until every cluster has a leader (the admin's /healthz answers 200).
healthy() {
  "$DENO" eval "const r = await fetch('$ADMIN_URL/healthz').catch(() => null);
    await r?.body?.cancel(); Deno.exit(r?.status === 200 ? 0 : 1)" 2>/dev/null
}
for _ in $(seq 1 300); do
  if ! kill -0 "$ADMIN_PID" 2>/dev/null; then
    echo "check failed: the admin exited" >&2
    exit 1
  fi
  if healthy; then break; fi
  sleep 0.2
done
healthy || { echo "check failed: no leader in every cluster after 60 s" >&2; exit 1; }
koi client status --admin "$ADMIN_URL"

"$DENO" run -A --config "$ROOT/deno.json" "$ROOT/scripts/multi_cluster_check.ts" \
  --admin "$ADMIN_URL" --keys "$KEYS" --pids "$WORK/pids"

"$DENO" run -A --config "$ROOT/deno.json" "$ROOT/scripts/reshard_check.ts" \
  --admin "$ADMIN_URL" --config "$WORK/config.toml" --pids "$WORK/pids"

koi client status --admin "$ADMIN_URL"
echo "routing check: $(koi client where key-00042 --admin "$ADMIN_URL" | head -1)"

kill -TERM "$ADMIN_PID"
if wait "$ADMIN_PID"; then
  ADMIN_PID=""
  echo "admin stopped cleanly with its nodes"
else
  code=$?
  ADMIN_PID=""
  echo "check failed: the admin exited with $code" >&2
  exit 1
fi
grep -c 'node stopped' "$WORK/admin.log" | xargs -I{} echo "{} node stop lines"
echo "OK: multiple clusters"
