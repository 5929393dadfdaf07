/**
 * A cluster secret that does not come from config.toml: the admin generates one for a
 * deployment whose file sets none, keeps it in a file of mode 0600, and hands the secret to its
 * nodes on their stdin (`koi node --supervised`); `koi node --secret-file` reads such a file.
 *
 * @module
 */
import { ConfigError } from "./_error.ts";
import { type KoiConfig, SECRET_CHARS_MIN } from "./_schema.ts";

/** Longest secret file read, in bytes: a secret is a short line. */
export const SECRET_FILE_BYTES_MAX = 4096;

/**
 * Gives every cluster that sets no `secret` in config.toml the secret `secret`; clusters
 * with their own keep it. Returns a new config; `config` is unchanged. A secret that breaks
 * the rules is a ConfigError on `field` (where the secret came from).
 */
export function withDefaultSecret(
  config: KoiConfig,
  secret: string,
  field = "--secret-file",
): KoiConfig {
  checkSecret(secret, "the secret", field);
  return {
    ...config,
    clusters: config.clusters.map((cluster) => ({
      ...cluster,
      nodes: cluster.nodes.map((node) => node.secret === undefined ? { ...node, secret } : node),
    })),
  };
}

/** Whether any cluster of `config` has no secret of its own. */
export function needsGeneratedSecret(config: KoiConfig): boolean {
  return config.clusters.some((cluster) => cluster.nodes.some((n) => n.secret === undefined));
}

/**
 * Reads a secret file: the secret alone, one trailing newline allowed, at least
 * {@linkcode SECRET_CHARS_MIN} characters, no whitespace or control characters, at most
 * {@linkcode SECRET_FILE_BYTES_MAX} bytes. Throws {@linkcode ConfigError} on `field` (the
 * flag or file that named it, default `--secret-file`) naming the file, never the secret.
 */
export async function readSecretFile(path: string, field = "--secret-file"): Promise<string> {
  let bytes: Uint8Array;
  try {
    using file = await Deno.open(path, { read: true });
    const info = await file.stat();
    if (!info.isFile) {
      throw new ConfigError(
        field,
        `Invalid ${field}: ${path} is not a file`,
      );
    }
    if (info.size > SECRET_FILE_BYTES_MAX) {
      throw new ConfigError(
        field,
        `Invalid ${field}: ${path} holds ${info.size} bytes; a secret file holds at most ${SECRET_FILE_BYTES_MAX}`,
      );
    }
    bytes = new Uint8Array(info.size);
    let read = 0;
    while (read < bytes.length) {
      const n = await file.read(bytes.subarray(read));
      if (n === null) break;
      read += n;
    }
    bytes = bytes.subarray(0, read);
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    const why = error instanceof Deno.errors.NotFound ? "no such file" : String(error);
    throw new ConfigError(
      field,
      `Invalid ${field}: cannot read ${path}: ${why}`,
    );
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new ConfigError(
      field,
      `Invalid ${field}: ${path} is not UTF-8 text`,
    );
  }
  const secret = text.endsWith("\n") ? text.slice(0, -1) : text;
  checkSecret(secret, path, field);
  return secret;
}

function checkSecret(secret: string, where: string, field = "--secret-file"): void {
  if ([...secret].length < SECRET_CHARS_MIN) {
    throw new ConfigError(
      field,
      `Invalid ${field}: ${where}: a secret has at least ${SECRET_CHARS_MIN} characters`,
    );
  }
  // deno-lint-ignore no-control-regex
  if (/[\s\x00-\x1f\x7f]/.test(secret)) {
    throw new ConfigError(
      field,
      `Invalid ${field}: ${where}: a secret has no whitespace or control characters`,
    );
  }
}

/**
 * Whether a presented token equals a secret, in time that does not depend on where they
 * differ (only on the longer one's length).
 */
export function secretsEqual(secret: string, token: string): boolean {
  const a = new TextEncoder().encode(secret);
  const b = new TextEncoder().encode(token);
  let difference = a.length ^ b.length;
  for (let i = 0; i < Math.max(a.length, b.length); i++) difference |= (a[i] ?? 0) ^ (b[i] ?? 0);
  return difference === 0;
}
