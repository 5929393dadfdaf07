/**
 * Typed operating errors of a node. One hono `onError` maps each to its status in docs/api.md.
 *
 * @module
 */
import type { TxnLockInfo } from "../txn/mod.ts";

/** No leader is known, or leadership was lost while the request waited (503 no_leader). */
export class NoLeaderError extends Error {
  /** Seconds the client should wait before retrying. */
  readonly retryAfterSec: number;
  /** Creates the error. */
  constructor(message: string, retryAfterSec = 1) {
    super(message);
    this.name = "NoLeaderError";
    this.retryAfterSec = retryAfterSec;
  }
}

/** A bounded queue is full: the request is refused instead of queued (503 overloaded). */
export class OverloadedError extends Error {
  /** Seconds the client should wait before retrying. */
  readonly retryAfterSec: number;
  /** Creates the error. */
  constructor(message: string, retryAfterSec = 1) {
    super(message);
    this.name = "OverloadedError";
    this.retryAfterSec = retryAfterSec;
  }
}

/**
 * This node cannot write its data directory (full, read-only, failing): it refuses writes
 * until its disk takes them again (503 disk_failed, retry: another node leads meanwhile).
 */
export class DiskFailedError extends Error {
  /** Seconds the client should wait before retrying. */
  readonly retryAfterSec: number;
  /** Creates the error. */
  constructor(message: string, options?: ErrorOptions & { retryAfterSec?: number }) {
    super(message, options);
    this.name = "DiskFailedError";
    this.retryAfterSec = options?.retryAfterSec ?? 1;
  }
}

/** The request did not complete in time; its outcome is unknown (503 no_leader, retry). */
export class RequestTimeoutError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "RequestTimeoutError";
  }
}

/** The key belongs to another cluster under the current routing table (421 wrong_shard). */
export class WrongShardError extends Error {
  /** The routing epoch the node checked against. */
  readonly epoch: number;
  /** The cluster that owns the key at that epoch, when known. */
  readonly owner: string | undefined;
  /** Creates the error. */
  constructor(message: string, epoch: number, owner?: string) {
    super(message);
    this.name = "WrongShardError";
    this.epoch = epoch;
    this.owner = owner;
  }
}

/**
 * A key is locked by a cross-cluster transaction in flight and stayed locked for as long as
 * the node waits (409 locked, with the lock in `x-koi-lock-*` headers): retry, or resolve the
 * lock once its deadline passed (docs/transactions.md).
 */
export class LockedError extends Error {
  /** The lock. */
  readonly lock: TxnLockInfo;
  /** Creates the error. */
  constructor(message: string, lock: TxnLockInfo) {
    super(message);
    this.name = "LockedError";
    this.lock = lock;
  }
}

/** A malformed request: bad key, header, body or parameter (400 bad_request). */
export class BadRequestError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "BadRequestError";
  }
}

/** A request larger than a limit (413 too_large). */
export class TooLargeError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "TooLargeError";
  }
}

/** A management call without the bearer token (401 unauthorized). */
export class UnauthorizedError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "UnauthorizedError";
  }
}

/** A node cannot listen: its address is taken. The message names the config field. */
export class AddressInUseError extends Error {
  /** The TOML path of the address, e.g. `clusters[0].nodes[1].http`. */
  readonly field: string;
  /** The address, `host:port`. */
  readonly address: string;
  /** Creates the error for `address`, configured at `field`. */
  constructor(field: string, address: string, options?: ErrorOptions) {
    super(
      `Address already in use: ${field} ${address} (another process listens there; stop it ` +
        `or change ${field})`,
      options,
    );
    this.name = "AddressInUseError";
    this.field = field;
    this.address = address;
  }
}

/**
 * A watch asked for changes this node no longer holds (410 compacted): the client re-reads
 * the keys and watches again from `rev`.
 */
export class WatchCompactedError extends Error {
  /** The node's current rev: watch from it after reading the keys again. */
  readonly rev: number;
  /** The oldest rev a watch may start from on this node (it holds every change after it). */
  readonly oldest: number;
  /** Creates the error. */
  constructor(message: string, rev: number, oldest: number) {
    super(message);
    this.name = "WatchCompactedError";
    this.rev = rev;
    this.oldest = oldest;
  }
}

/** The node serves as many watch streams as it may (503 too_many_watchers, retry later). */
export class TooManyWatchersError extends Error {
  /** Seconds the client should wait before retrying. */
  readonly retryAfterSec: number;
  /** Creates the error. */
  constructor(message: string, retryAfterSec = 1) {
    super(message);
    this.name = "TooManyWatchersError";
    this.retryAfterSec = retryAfterSec;
  }
}
