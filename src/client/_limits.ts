/** The client's limits and default time budgets (docs/client.md). */

/** The largest key, in bytes (keys are 1..1024 bytes). */
export const KEY_BYTES_MAX = 1024;
/** The largest value, in bytes (1 MiB). */
export const VALUE_BYTES_MAX = 1_048_576;
/** The largest page `list` returns. */
export const LIST_LIMIT_MAX = 1000;
/** The page size `list` uses when no `limit` is given. */
export const LIST_LIMIT_DEFAULT = 100;
/** A call's default time budget, retries included, in milliseconds. */
export const TIMEOUT_MS_DEFAULT = 10_000;
/** One attempt's default time budget, in milliseconds (capped by what the call has left). */
export const ATTEMPT_TIMEOUT_MS_DEFAULT = 5_000;

/** The largest timeout a timer can hold (about 24.8 days). */
export const TIMEOUT_MS_MAX = 2_147_483_647;
