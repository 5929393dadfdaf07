/**
 * A node's data directory: an exclusive lock held for the life of the process, and a probe
 * that the directory takes durable writes, both before the Deno.Kv file is opened.
 *
 * The lock is `flock(LOCK_EX | LOCK_NB)` on `<dir>/LOCK` (Deno's `FsFile.tryLock(true)`): the
 * kernel releases it when the process dies, `kill -9` included, so a stale lock cannot stop a
 * restart, and a reused PID cannot fake one. The holder's PID and start time are written into
 * the file only to name it in the error.
 *
 * @module
 */

/** The lock file's name inside the data directory. */
export const LOCK_FILE = "LOCK";
/** The name of the file the writability probe creates and deletes. */
export const PROBE_FILE = ".probe";

/** Another live process holds the data directory's lock. */
export class DataDirLockedError extends Error {
  /** The locked directory. */
  readonly dir: string;
  /** The holder's PID as recorded in the lock file, when readable. */
  readonly holderPid: number | undefined;

  /** Creates the error naming the directory and the holder. */
  constructor(dir: string, holderPid: number | undefined, startedAt?: string) {
    const holder = holderPid === undefined
      ? "another process"
      : `process ${holderPid}${startedAt === undefined ? "" : ` (started ${startedAt})`}`;
    super(
      `Cannot use data directory ${dir}: it is locked by ${holder} (another koi node is running with this directory)`,
    );
    this.name = "DataDirLockedError";
    this.dir = dir;
    this.holderPid = holderPid;
  }
}

/** The data directory cannot be created, locked or written. */
export class DataDirUnwritableError extends Error {
  /** The path that failed. */
  readonly path: string;

  /** Creates the error naming the path and the operating system's error. */
  constructor(path: string, cause: unknown) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    super(`Cannot use data directory ${path}: it is not writable: ${reason}`, { cause });
    this.name = "DataDirUnwritableError";
    this.path = path;
  }
}

/** The held lock of a data directory. */
export interface DataDirLock {
  /** The locked directory. */
  readonly dir: string;
  /** Releases the lock (idempotent); the process dying releases it too. */
  release(): void;
}

interface Holder {
  readonly pid: number;
  readonly startedAt: string;
}

function parseHolder(text: string): Holder | undefined {
  try {
    const v = JSON.parse(text) as Partial<Holder>;
    if (typeof v.pid === "number" && typeof v.startedAt === "string") {
      return { pid: v.pid, startedAt: v.startedAt };
    }
  } catch {
    // An empty or torn record: the holder is unknown.
  }
  return undefined;
}

async function readHolder(path: string): Promise<Holder | undefined> {
  try {
    return parseHolder(await Deno.readTextFile(path));
  } catch {
    return undefined;
  }
}

/** The start of this process, from the monotonic clock's origin. */
function processStart(): string {
  return new Date(performance.timeOrigin).toISOString();
}

/**
 * Takes the data directory `dir` for this process: creates it when missing, takes the
 * exclusive lock on `<dir>/LOCK` without waiting (`DataDirLockedError` naming the holder when
 * another live process has it) and probes that a file can be created, written, synced and
 * deleted there (`DataDirUnwritableError` naming the path and the OS error otherwise).
 *
 * @example
 * ```ts ignore
 * const lock = await lockDataDir("data/a1");
 * try {
 *   const kv = await Deno.openKv("data/a1/koi.kv");
 *   // ...
 * } finally {
 *   lock.release();
 * }
 * ```
 */
export async function lockDataDir(dir: string): Promise<DataDirLock> {
  try {
    await Deno.mkdir(dir, { recursive: true });
  } catch (e) {
    throw new DataDirUnwritableError(dir, e);
  }
  const lockPath = `${dir}/${LOCK_FILE}`;
  let file: Deno.FsFile;
  try {
    file = await Deno.open(lockPath, { read: true, write: true, create: true });
  } catch (e) {
    throw new DataDirUnwritableError(lockPath, e);
  }
  let locked = false;
  try {
    locked = await file.tryLock(true);
    if (!locked) {
      const holder = await readHolder(lockPath);
      throw new DataDirLockedError(dir, holder?.pid, holder?.startedAt);
    }
    const record = new TextEncoder().encode(
      JSON.stringify({ pid: Deno.pid, startedAt: processStart() }) + "\n",
    );
    await file.truncate(0);
    await file.seek(0, Deno.SeekMode.Start);
    await writeAll(file, record);
    await probeWritable(dir);
  } catch (e) {
    file.close(); // closing the descriptor releases the lock
    if (e instanceof DataDirLockedError || e instanceof DataDirUnwritableError) throw e;
    throw new DataDirUnwritableError(lockPath, e);
  }
  let released = false;
  return {
    dir,
    release() {
      if (released) return;
      released = true;
      file.close();
    },
  };
}

async function writeAll(file: Deno.FsFile, data: Uint8Array): Promise<void> {
  for (let o = 0; o < data.length;) o += await file.write(data.subarray(o));
}

/** Creates, writes, syncs and deletes a probe file in `dir`. */
export async function probeWritable(dir: string): Promise<void> {
  const path = `${dir}/${PROBE_FILE}`;
  try {
    const f = await Deno.open(path, { write: true, create: true, truncate: true });
    try {
      await writeAll(f, new TextEncoder().encode("koi writability probe\n"));
      await f.sync();
    } finally {
      f.close();
    }
    await Deno.remove(path);
  } catch (e) {
    throw new DataDirUnwritableError(path, e);
  }
}
