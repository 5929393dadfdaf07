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

/**
 * The largest answer to a `get` the client reads, in bytes: a value (at most
 * {@linkcode VALUE_BYTES_MAX}) and room for an error answer or a proxy's page. A node that
 * sends more breaks the contract: the call fails with `bad_response`.
 */
export const VALUE_ANSWER_BYTES_MAX = VALUE_BYTES_MAX + 64 * 1024;
/** The largest answer to a `put` or `delete` the client reads: `{rev}` or an error, in bytes. */
export const WRITE_ANSWER_BYTES_MAX = 64 * 1024;
/**
 * The largest answer to one cluster's listing the client reads, in bytes: up to
 * {@linkcode LIST_LIMIT_MAX} keys of up to {@linkcode KEY_BYTES_MAX} bytes, each as JSON text
 * (up to 6 characters a byte when escaped) and as base64url, is under 8 MiB.
 */
export const LIST_ANSWER_BYTES_MAX = 16 * 1024 * 1024;
/** The largest answer of the admin (`/v1/carp`, `/v1/clusters`) the client reads, in bytes. */
export const ADMIN_ANSWER_BYTES_MAX = 16 * 1024 * 1024;
/** The longest server error message the client passes on, in characters (longer ones are cut). */
export const ERROR_MESSAGE_CHARS_MAX = 1_000;

/** A watch reconnects after at most this long at first (full jitter), doubling per round. */
export const WATCH_RETRY_BASE_MS = 50;
/** A watch waits at most this long between rounds of reconnecting to a cluster's nodes. */
export const WATCH_RETRY_MAX_MS = 2_000;
/**
 * A watch stream that sends nothing for this long (a node sends a keep-alive every 15 s) is
 * taken for dead: the client reconnects.
 */
export const WATCH_IDLE_MS = 45_000;
/** The longest message of a watch stream the client reads, in characters. */
export const WATCH_MESSAGE_CHARS_MAX: number = 16 * 1024 * 1024;
/** Changes a watch holds for its caller, at most (then it stops reading the streams). */
export const WATCH_BUFFER_CHANGES_MAX = 1_000;
/** Bytes of keys and values a watch holds for its caller, at most (then it stops reading). */
export const WATCH_BUFFER_BYTES_MAX: number = 4 * 1024 * 1024;
