# Sourced by the benchmark scripts (after scripts/_deno.sh set $DENO): process checks, free
# loopback ports, and the config of one cluster of three nodes.
# shellcheck shell=bash

# Whether a PID is alive and not a zombie.
koi_running() {
  local state
  state=$(ps -o stat= -p "$1" 2>/dev/null || true)
  [ -n "$state" ] && [ "${state:0:1}" != Z ]
}

# Prints N ports the OS reports free right now (all bound at once, then released).
koi_free_ports() {
  "$DENO" eval "
    const ls = Array.from({ length: $1 }, () => Deno.listen({ hostname: '127.0.0.1', port: 0 }));
    console.log(ls.map((l) => l.addr.port).join(' ')); for (const l of ls) l.close();"
}

# Stops a `koi admin` by PID: SIGTERM (it stops its nodes, SIGKILL after 12 s), then SIGKILL
# after 20 s (its nodes then see their stdin end and stop).
koi_stop_admin() {
  local pid=$1
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 200); do koi_running "$pid" || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# Prints the config.toml of one cluster "a" of nodes a1..a3 with raft/http on ports $2..$7
# and the admin on port $1; data under data/.
koi_one_cluster_config() {
  local admin=$1
  shift
  printf '[admin]\nhttp = "127.0.0.1:%s"\n[[clusters]]\nid = "a"\n' "$admin"
  for i in 1 2 3; do
    printf '[[clusters.nodes]]\nid = "a%s"\nraft = "127.0.0.1:%s"\nhttp = "127.0.0.1:%s"\ndata = "data/a%s"\n' \
      "$i" "$1" "$2" "$i"
    shift 2
  done
}

# Prints the CPU ticks (user + system, CLK_TCK per second) the given PIDs used so far, summed
# (a PID that is gone counts 0).
koi_cpu_ticks() {
  local sum=0 pid
  for pid in "$@"; do
    sum=$((sum + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)))
  done
  echo "$sum"
}

# Prints "<ops/s> <p99 ms> <errors>" of the measured phase of a `koi bench load --json` report.
koi_load_summary() {
  "$DENO" eval '
    const m = JSON.parse(Deno.readTextFileSync(Deno.args[0])).measured;
    console.log(Math.round(m.opsPerSecond), (m.byType.all?.latencyMs.p99 ?? 0).toFixed(1), m.errors);
  ' "$1"
}
