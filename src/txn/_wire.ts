/**
 * The names both ends of the transaction endpoints use (docs/api.md, "Transaction endpoints"):
 * the node paths and the headers of a `409 locked`.
 *
 * @module
 */

/** The node paths of transaction commands and of a snapshot read's two rounds. */
export const TXN_PATHS = {
  /** A transaction command (msgpack). */
  command: "/v1/txn/command",
  /** A snapshot read's first round. */
  read: "/v1/txn/read",
  /** A snapshot read's second round. */
  check: "/v1/txn/check",
  /** A prepare whose share is a KV Connect `AtomicWrite` (the gateway's). */
  kvcPrepare: "/v1/kvc/prepare",
  /** The primary's decisions not forgotten, past their deadline (a janitor's). */
  records: "/v1/txn/records",
  /** Whether this cluster still holds attempts' intents (a janitor's). */
  held: "/v1/txn/held",
} as const;

/** The headers of a `409 locked` that carry the lock. */
export const LOCK_HEADERS = {
  /** The attempt holding it. */
  txn: "x-koi-lock-txn",
  /** Its primary cluster. */
  primary: "x-koi-lock-primary",
  /** Its deadline (ms since 1970). */
  deadline: "x-koi-lock-deadline",
  /** The key, base64. */
  key: "x-koi-lock-key",
  /** Whether it is a write lock. */
  write: "x-koi-lock-write",
} as const;
