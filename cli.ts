/**
 * The koi command line: one executable, several modes (see README.md and docs/api.md). Exit
 * codes: 0 success, 1 runtime failure, 2 usage or configuration error (naming the bad flag or
 * field). Each mode lives in `src/cli/`.
 *
 * @module
 */
import { ConfigError } from "./src/config/mod.ts";
import { isParseArgsError, UsageError } from "./src/cli/_common.ts";
import { NODE_USAGE, nodeCommand } from "./src/cli/node_cmd.ts";
import {
  BENCH_DIST_USAGE,
  BENCH_LOAD_USAGE,
  BENCH_USAGE,
  benchCommand,
} from "./src/cli/bench_cmd.ts";
import { ADMIN_USAGE, adminCommand } from "./src/cli/admin_cmd.ts";
import { CLIENT_USAGE, clientCommand, clientUsageFor } from "./src/cli/client_cmd.ts";
import { KOI_VERSION } from "./src/cli/version.ts";

export { KOI_VERSION };

const USAGE = `koi — a sharded, Raft-replicated key-value store

Usage: koi <mode> [options]

Modes:
  node     run one Raft member of config.toml          (koi node --help)
  admin    spawn and supervise every node of config.toml  (koi admin --help)
  client   get / put / del / list / where / status         (koi client --help)
  bench    benchmarks: dist (CARP spread), load (YCSB-style) (koi bench --help)

Options:
  -h, --help     show this help
  -V, --version  print the version
`;

/** The usage text printed after a usage error of `args` (the mode's own, if it has one). */
function usageFor(args: readonly string[]): string {
  if (args[0] === "node") return NODE_USAGE;
  if (args[0] === "admin") return ADMIN_USAGE;
  if (args[0] === "client") return clientUsageFor(args.slice(1)) ?? CLIENT_USAGE;
  if (args[0] === "bench") {
    return args[1] === "dist"
      ? BENCH_DIST_USAGE
      : args[1] === "load"
      ? BENCH_LOAD_USAGE
      : BENCH_USAGE;
  }
  return USAGE;
}

async function main(args: string[]): Promise<number> {
  const [mode, ...rest] = args;
  try {
    switch (mode) {
      case undefined:
      case "-h":
      case "--help":
      case "help":
        console.log(USAGE);
        return 0;
      case "-V":
      case "--version":
      case "version":
        console.log(`koi ${KOI_VERSION} (deno ${Deno.version.deno})`);
        return 0;
      case "node":
        return await nodeCommand(rest);
      case "admin":
        return await adminCommand(rest);
      case "client":
        return await clientCommand(rest);
      case "bench":
        return await benchCommand(rest);
      default:
        throw new UsageError(`Unknown mode: ${mode}`);
    }
  } catch (error) {
    if (error instanceof UsageError || isParseArgsError(error)) {
      console.error(`koi: ${(error as Error).message}\n\n${usageFor(args)}`);
      return 2;
    }
    if (error instanceof ConfigError) {
      console.error(`koi: ${error.message}`);
      return 2;
    }
    console.error(`koi: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
