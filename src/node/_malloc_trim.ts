/**
 * Hands memory the process freed back to the operating system. Deno's native side (Deno.Kv's
 * SQLite, the I/O buffers, ArrayBuffer backing stores) allocates with glibc's malloc, which
 * keeps freed memory for reuse: after a burst of writes or a snapshot a node's RSS stayed
 * ~40 MB above what it used (measured at 10⁵ keys: 58 MB of malloc heap, 14 MB after
 * `malloc_trim`). Two calls of glibc through Deno's FFI fix that:
 *
 * - `mallopt(M_MMAP_THRESHOLD, 128 KiB)` once: large blocks (frames, snapshot chunks, big
 *   buffers) get their own mappings, returned when freed. The default threshold grows with
 *   the largest block freed, up to 32 MiB, after which such blocks stay in the heap.
 * - `malloc_trim(0)` every {@linkcode MALLOC_TRIM_INTERVAL_MS}, on a worker thread (FFI
 *   `nonblocking`), so the event loop never waits for it: it releases the free pages inside
 *   the heap too, not only at its top.
 *
 * Where there is no glibc (macOS, musl) or no FFI permission, there is no trimmer and nothing
 * changes but the memory figures.
 *
 * @module
 */

/** How often the node trims. */
export const MALLOC_TRIM_INTERVAL_MS = 10_000;

/** Blocks at least this large get their own mapping (glibc's default start value, fixed). */
export const MMAP_THRESHOLD_BYTES = 128 * 1024;

const M_MMAP_THRESHOLD = -3;

const SYMBOLS = {
  mallopt: { parameters: ["i32", "i32"], result: "i32" },
  malloc_trim: { parameters: ["usize"], result: "i32", nonblocking: true },
} as const;

/** Trims glibc's heap on demand; see the module doc. */
export interface MallocTrimmer {
  /** Releases free memory; resolves with whether any was released. */
  trim(): Promise<boolean>;
  /** Trims done so far. */
  readonly trims: number;
  /** Closes the library handle; trim() must not be called after. */
  close(): void;
}

/**
 * Opens glibc through FFI, fixes the mmap threshold and returns a trimmer; undefined when the
 * platform has no glibc or the process may not use FFI.
 */
export function openMallocTrimmer(): MallocTrimmer | undefined {
  if (Deno.build.os !== "linux" || Deno.build.env !== "gnu") return undefined;
  let lib: Deno.DynamicLibrary<typeof SYMBOLS>;
  try {
    lib = Deno.dlopen("libc.so.6", SYMBOLS);
  } catch {
    return undefined; // no FFI permission, or no such library
  }
  lib.symbols.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES);
  let trims = 0;
  return {
    async trim() {
      const released = await lib.symbols.malloc_trim(0n);
      trims++;
      return released === 1;
    },
    get trims() {
      return trims;
    },
    close: () => lib.close(),
  };
}

/** Periodic trims of the process's heap; see {@linkcode startMallocTrims}. */
export interface MallocTrims {
  /** Trims done so far (0 where there is no trimmer). */
  readonly trims: number;
  /** Stops trimming, after the trim under way. */
  stop(): Promise<void>;
}

/** Trims every `intervalMs` (one trim at a time) until stopped; see the module doc. */
export function startMallocTrims(intervalMs = MALLOC_TRIM_INTERVAL_MS): MallocTrims {
  const trimmer = openMallocTrimmer();
  let running: Promise<unknown> | undefined;
  const timer = trimmer === undefined ? undefined : setInterval(() => {
    running ??= trimmer.trim().catch(() => false).finally(() => (running = undefined));
  }, intervalMs);
  return {
    get trims() {
      return trimmer?.trims ?? 0;
    },
    async stop() {
      clearInterval(timer);
      await running;
      trimmer?.close();
    },
  };
}
