/**
 * The generated KV Connect access token: when `[kv_connect]` lists no `tokens`, the admin
 * makes one on first start (32 random bytes, base64url: 43 characters) and keeps it next to
 * the deployment's secret, in `<admin.data>/kv_connect_token` (mode 0600), so a restarted
 * deployment accepts the same `DENO_KV_ACCESS_TOKEN`. The file is looked at before it is
 * opened: a symbolic link, a FIFO (opening it would block the start) or anything else but a
 * regular file is refused; the temporary file it is written through is created exclusively.
 *
 * @module
 */
import { ConfigError, readSecretFile } from "../config/mod.ts";

/** The token's file name inside the admin's state directory. */
export const KV_CONNECT_TOKEN_FILE = "kv_connect_token";
/** Random bytes in a generated token (43 characters of base64url). */
export const KV_CONNECT_TOKEN_RANDOM_BYTES = 32;

/** Where the token lives and what it is. */
export interface StoredKvConnectToken {
  /** The file. */
  readonly path: string;
  /** The token. */
  readonly token: string;
  /** Whether this call created it. */
  readonly created: boolean;
  /** Set when the file was readable by others and its mode was corrected to 0600. */
  readonly modeFixed?: number;
}

const FIELD = "kv_connect token file";

function refuse(path: string, what: string): never {
  throw new ConfigError(
    FIELD,
    `Invalid ${FIELD}: ${path} is ${what}, not a regular file. Remove it: the admin then ` +
      "generates a new token (clients need the new DENO_KV_ACCESS_TOKEN it prints).",
  );
}

function kindOf(info: Deno.FileInfo): string {
  return info.isSymlink
    ? "a symbolic link"
    : info.isDirectory
    ? "a directory"
    : info.isFifo
    ? "a FIFO (named pipe)"
    : info.isSocket
    ? "a socket"
    : "a device";
}

/** `<dir>/kv_connect_token`, read, or created (mode 0600) when absent. */
export async function loadOrCreateKvConnectToken(dir: string): Promise<StoredKvConnectToken> {
  const path = `${dir}/${KV_CONNECT_TOKEN_FILE}`;
  let info: Deno.FileInfo | undefined;
  try {
    info = await Deno.lstat(path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  if (info !== undefined) {
    if (!info.isFile) refuse(path, kindOf(info));
    const token = await readSecretFile(path, FIELD).catch((error) => {
      if (!(error instanceof ConfigError)) throw error;
      throw new ConfigError(
        FIELD,
        `${error.message}. Repair it, or delete it: the admin then generates a new token.`,
      );
    });
    const mode = (info.mode ?? 0) & 0o777;
    if ((mode & 0o077) !== 0) {
      await Deno.chmod(path, 0o600);
      return { path, token, created: false, modeFixed: mode };
    }
    return { path, token, created: false };
  }
  const bytes = crypto.getRandomValues(new Uint8Array(KV_CONNECT_TOKEN_RANDOM_BYTES));
  const token = btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_")
    .replace(/=+$/, "");
  const tmp = `${path}.tmp`;
  // A leftover of a crash (or a link someone planted) goes first: the new file is created
  // exclusively, so the token is never written through a link into another file.
  await Deno.remove(tmp).catch((error) => {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  });
  const file = await Deno.open(tmp, { write: true, createNew: true, mode: 0o600 });
  try {
    await Deno.chmod(tmp, 0o600); // the umask may have taken bits away, never added: be sure
    const data = new TextEncoder().encode(`${token}\n`);
    for (let done = 0; done < data.length;) done += await file.write(data.subarray(done));
    await file.sync();
  } finally {
    file.close();
  }
  await Deno.rename(tmp, path);
  return { path, token, created: true };
}
