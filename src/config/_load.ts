/** Reading and parsing `config.toml`. */

import { dirname, resolve } from "node:path";
import { parse, TomlError } from "smol-toml";
import { ConfigError } from "./_error.ts";
import type { ClusterConfig, KoiConfig, NodeConfig } from "./_schema.ts";
import { validateConfig } from "./_validate.ts";

/** Where {@link parseConfig} resolves relative data paths and what it reports as the source. */
export interface ParseConfigOptions {
  /** The folder relative `data` paths are resolved against (normally the file's folder). */
  baseDir: string;
  /** The absolute path of the file the text came from; "" (the default) when none. */
  path?: string;
}

/** Parses and validates TOML text; `baseDir` resolves relative data paths. Throws ConfigError. */
export function parseConfig(text: string, options: ParseConfigOptions): KoiConfig {
  const path = options.path ?? "";
  let raw: unknown;
  try {
    // Keys like __proto__ are refused rather than kept: nothing in the format needs them.
    raw = parse(text, { unsafeKeyBehaviour: "throw" });
  } catch (error) {
    if (!(error instanceof TomlError)) throw error;
    const reason = error.message.replace(/^Invalid TOML document: /, "").split("\n\n")[0];
    const source = path === "" ? "config" : `config file ${path}`;
    throw new ConfigError(
      "config",
      `Invalid ${source}: TOML syntax error at line ${error.line}, column ${error.column}: ` +
        `${reason}\n\n${error.codeblock}`,
      { cause: error },
    );
  }
  return validateConfig(raw, { baseDir: options.baseDir, path });
}

/**
 * Reads and validates a file. Missing/unreadable file -> ConfigError with field "config"
 * naming the path.
 */
export async function loadConfig(path: string): Promise<KoiConfig> {
  return (await loadConfigSource(path)).config;
}

/**
 * {@link loadConfig}, also returning the text it parsed: the admin hands exactly that text to
 * its nodes, so that a file edited later cannot make one node run another configuration.
 */
export async function loadConfigSource(path: string): Promise<{ config: KoiConfig; text: string }> {
  const absolute = resolve(path);
  let text: string;
  try {
    text = await Deno.readTextFile(absolute);
  } catch (error) {
    const reason = error instanceof Deno.errors.NotFound
      ? "no such file"
      : error instanceof Error
      ? error.message
      : String(error);
    throw new ConfigError("config", `Cannot read config file ${absolute}: ${reason}`, {
      cause: error,
    });
  }
  return { config: parseConfig(text, { baseDir: dirname(absolute), path: absolute }), text };
}

/**
 * Finds a node by id with its cluster; throws ConfigError(field "id") naming the known ids
 * when absent.
 */
export function findNode(
  config: KoiConfig,
  nodeId: string,
): { node: NodeConfig; cluster: ClusterConfig } {
  for (const cluster of config.clusters) {
    const node = cluster.nodes.find((n) => n.id === nodeId);
    if (node !== undefined) return { node, cluster };
  }
  const known = config.clusters.flatMap((c) => c.nodes.map((n) => n.id)).join(", ");
  throw new ConfigError(
    "id",
    `Unknown node id ${JSON.stringify(nodeId)}: the config${
      config.path === "" ? "" : ` ${config.path}`
    } knows ${known}`,
  );
}
