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
 * Whether to snapshot now. A snapshot costs about the state's size, so the log may grow to
 * the state's size (in bytes and in entries ≈ keys) before the next one: the snapshot cost per
 * written byte stays flat as data grows, while the log, and the memory it holds, stays bounded
 * by max(minimum, state) in bytes as well as in entries.
 */
export function shouldSnapshot(input: SnapshotPolicyInput, limits: SnapshotPolicyLimits): boolean {
  if (input.entriesSince <= 0) return false;
  if (input.entriesSince >= Math.max(limits.snapshotEntries, input.keys)) return true;
  return input.logBytes >= Math.max(limits.snapshotLogBytes, input.stateBytes);
}
