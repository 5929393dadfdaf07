/**
 * The koi command line: one executable, several modes (see README.md).
 *
 * @module
 */
const USAGE = `koi — a sharded, Raft-replicated key-value store

Usage: koi <mode> [options]

Modes:
  node     run one Raft member (coming with the node issue)
  admin    spawn and supervise the nodes of config.toml (coming later)
  client   get / put / del / list / status (coming later)
  bench    load and distribution benchmarks (coming later)

Options:
  -h, --help   show this help
`;

if (import.meta.main) {
  const [mode] = Deno.args;
  if (mode === undefined || mode === "-h" || mode === "--help" || mode === "help") {
    console.log(USAGE);
    Deno.exit(0);
  }
  console.error(`koi: unknown mode: ${mode}\n\n${USAGE}`);
  Deno.exit(2);
}
