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
