/** Builders of small config.toml texts for the tests of this folder. */

import assert from "node:assert/strict";
import { ConfigError } from "./_error.ts";
import { parseConfig } from "./_load.ts";
import type { KoiConfig } from "./_schema.ts";

/** The folder test configs resolve their data paths against. */
export const BASE_DIR = "/srv/koi";

/** The `[admin]` table every test config starts with. */
export const ADMIN = `[admin]\nhttp = "127.0.0.1:7000"\n`;

/** A `[[clusters.nodes]]` entry with ports derived from `n` and data dir `data/<id>`. */
export function nodeToml(id: string, n: number, extra = ""): string {
  return `[[clusters.nodes]]\nid = "${id}"\nraft = "127.0.0.1:${7100 + n}"\n` +
    `http = "127.0.0.1:${7200 + n}"\ndata = "data/${id}"\n${extra}\n`;
}

/** A `[[clusters]]` entry followed by its nodes. */
export function clusterToml(id: string, nodes: readonly string[], extra = ""): string {
  return `[[clusters]]\nid = "${id}"\n${extra}\n${nodes.join("")}`;
}

/** A valid file: the admin and cluster "a" with node "a1". */
export const MINIMAL: string = ADMIN + clusterToml("a", [nodeToml("a1", 1)]);

/** Parses `text` against {@link BASE_DIR}. */
export function parse(text: string): KoiConfig {
  return parseConfig(text, { baseDir: BASE_DIR });
}

/** The ConfigError parsing `text` throws; fails the test when it throws nothing. */
export function configError(text: string): ConfigError {
  try {
    parse(text);
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  assert.fail(`expected a ConfigError for:\n${text}`);
}

/**
 * Asserts parsing `text` fails about `field` (alone, or among the problems it lists) with a
 * message holding every fragment.
 */
export function assertConfigError(text: string, field: string, ...fragments: string[]): void {
  const all = configError(text);
  const error = all.problems.find((p) => p.field === field) ?? all;
  assert.equal(error.field, field, all.message);
  assert.ok(
    error.message.startsWith(`Invalid config field ${field}: `),
    `message does not name ${field}: ${error.message}`,
  );
  for (const fragment of fragments) {
    assert.ok(error.message.includes(fragment), `"${fragment}" missing from: ${error.message}`);
  }
}
