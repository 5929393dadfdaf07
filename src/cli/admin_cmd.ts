/**
 * `koi admin`: spawns and supervises every node of config.toml and serves the routing table.
 *
 * @module
 */
import { UsageError } from "./_common.ts";

/** The usage of `koi admin`. */
export const ADMIN_USAGE = `Usage: koi admin --config <config.toml> [options]`;

/** Runs `koi admin <args>`; returns the exit code. */
export function adminCommand(_args: string[]): Promise<number> {
  return Promise.reject(new UsageError("koi admin is not built yet"));
}
