/**
 * `koi client`: get / put / del / list / where / status through the routing client.
 *
 * @module
 */
import { UsageError } from "./_common.ts";

/** The usage of `koi client`. */
export const CLIENT_USAGE = `Usage: koi client <command> --admin <url> [options]`;

/** The usage of the `koi client` subcommand named in `args`, if there is one. */
export function clientUsageFor(_args: readonly string[]): string | undefined {
  return undefined;
}

/** Runs `koi client <args>`; returns the exit code. */
export function clientCommand(_args: string[]): Promise<number> {
  return Promise.reject(new UsageError("koi client is not built yet"));
}
