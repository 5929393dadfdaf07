/**
 * The deployment's generated secret: when config.toml sets none for some cluster, the admin
 * makes one on first start (32 random bytes, base64url), keeps it in `<admin.data>/secret`
 * with mode 0600, and gives it to every node on its stdin (`koi node --supervised`). Later starts
 * read the same file, so a restarted deployment keeps authenticating its peers.
 *
 * @module
 */
import { ConfigError, readSecretFile } from "../config/mod.ts";

/** The secret's file name inside the admin's state directory. */
export const SECRET_FILE = "secret";
/** Random bytes in a generated secret. */
export const SECRET_RANDOM_BYTES = 32;

/** Where the secret lives and what it is. */
export interface StoredSecret {
  /** The file. */
  readonly path: string;
  /** The secret. */
  readonly secret: string;
  /** Whether this call created it. */
  readonly created: boolean;
  /** Set when the file was readable by others and its mode was corrected to 0600. */
  readonly modeFixed?: number;
}

/**
 * Reads `<dir>/secret`, or creates it (mode 0600, written to a temporary file, synced and
 * renamed, so a crash never leaves a half-written secret). A file that other users could read
 * is set back to 0600, and the caller is told.
 */
export async function loadOrCreateSecret(dir: string): Promise<StoredSecret> {
  const path = `${dir}/${SECRET_FILE}`;
  try {
    const info = await Deno.stat(path);
    const secret = await readSecretFile(path, "admin secret file").catch((error) => {
      if (!(error instanceof ConfigError)) throw error;
      throw new ConfigError(
        error.field,
        `${error.message}. Repair it, or delete it: the admin then generates a new secret and ` +
          `every node gets it when the admin starts it, so the nodes keep trusting each other.`,
      );
    });
    const mode = (info.mode ?? 0) & 0o777;
    if ((mode & 0o077) !== 0) {
      await Deno.chmod(path, 0o600);
      return { path, secret, created: false, modeFixed: mode };
    }
    return { path, secret, created: false };
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  const bytes = crypto.getRandomValues(new Uint8Array(SECRET_RANDOM_BYTES));
  const secret = btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_")
    .replace(/=+$/, "");
  const tmp = `${path}.tmp`;
  const file = await Deno.open(tmp, { write: true, create: true, truncate: true, mode: 0o600 });
  try {
    await Deno.chmod(tmp, 0o600); // an existing .tmp keeps its old mode otherwise
    const data = new TextEncoder().encode(`${secret}\n`);
    for (let done = 0; done < data.length;) done += await file.write(data.subarray(done));
    await file.sync();
  } finally {
    file.close();
  }
  await Deno.rename(tmp, path);
  return { path, secret, created: true };
}
