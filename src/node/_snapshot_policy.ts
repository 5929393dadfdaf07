/** When the driver takes a snapshot: by log entries and by log bytes, scaled to the state. */

/** Limits of the snapshot policy. */
export interface SnapshotPolicyLimits {
  /** Entries since the last snapshot that trigger one, at least (scaled up by the key count). */
  readonly snapshotEntries: number;
  /** Log bytes since the last snapshot that trigger one, at least (scaled up by state bytes). */
  readonly snapshotLogBytes: number;
}

/** What the policy looks at. */
export interface SnapshotPolicyInput {
  /** Entries applied since the last snapshot. */
  readonly entriesSince: number;
  /** Encoded bytes of the log kept between the snapshot and the last index. */
  readonly logBytes: number;
  /** Keys in the state machine. */
  readonly keys: number;
  /** Key and value bytes in the state machine. */
  readonly stateBytes: number;
}

/**
 * How much smaller than the state the log stays, in entries (against keys) and in bytes: the
 * log lives in memory, and each of its entries costs more memory than a key of the state.
 */
export const STATE_TO_LOG = 4;

/**
 * Whether to snapshot now. A snapshot costs about the state's size, so the log may grow to a
 * fixed fraction of the state's size (1 / {@linkcode STATE_TO_LOG}, in bytes and in entries
 * ≈ keys) before the next one: the snapshot cost per written byte stays flat as data grows,
 * while the log, and the memory it holds, stays bounded by max(minimum, state / 4) in bytes
 * as well as in entries.
 */
export function shouldSnapshot(input: SnapshotPolicyInput, limits: SnapshotPolicyLimits): boolean {
  if (input.entriesSince <= 0) return false;
  const entries = Math.max(limits.snapshotEntries, Math.ceil(input.keys / STATE_TO_LOG));
  if (input.entriesSince >= entries) return true;
  const bytes = Math.max(limits.snapshotLogBytes, Math.ceil(input.stateBytes / STATE_TO_LOG));
  return input.logBytes >= bytes;
}
