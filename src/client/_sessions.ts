/**
 * Request-id sessions (docs/api.md, "Request ids"): a client id is a session with one write
 * in flight at a time, whose seq only grows. Each write borrows a free session for all its
 * attempts; concurrent writes therefore never share a client id.
 */

/** One session: its client id and the seq of its latest write. */
export interface Session {
  readonly id: string;
  /** The seq of the write that holds (or last held) this session. */
  seq: number;
}

/** The largest seq the server accepts has 15 digits; a session is retired before it. */
const SEQ_MAX = 999_999_999_999_999;

/** The free sessions of one client, and how new ones are named. */
export class SessionPool {
  readonly #prefix: string;
  readonly #free: Session[] = [];
  #created = 0;

  /** `prefix` is the client's id; sessions are `<prefix>-<n>`. */
  constructor(prefix: string) {
    this.#prefix = prefix;
  }

  /** How many sessions exist (free or lent). */
  get created(): number {
    return this.#created;
  }

  /** How many sessions are free. */
  get free(): number {
    return this.#free.length;
  }

  /**
   * Lends a session for one write and advances its seq: the write uses `session.seq` for
   * every attempt. A free session is reused when there is one.
   */
  acquire(): Session {
    let session = this.#free.pop();
    if (session === undefined || session.seq >= SEQ_MAX) session = this.#fresh();
    session.seq += 1;
    return session;
  }

  /**
   * Gives a session back once its write ended. `settled` is false when the write's outcome
   * stayed unknown (an attempt may still be on its way to the leader): the session is still
   * reusable, since the next write takes a greater seq, which the server orders after the
   * stray attempt (applied before it, or refused as `stale_request` after it). Such a session
   * goes to the bottom of the free list so that it is reused last.
   */
  release(session: Session, settled: boolean): void {
    if (settled) this.#free.push(session);
    else this.#free.unshift(session);
  }

  /**
   * A new session for the same write, seq 1 under a new client id, when the server has seen
   * a greater seq under the old one (`409 stale_request`): the old one is never lent again
   * (its holder simply does not release it).
   */
  replace(): Session {
    const session = this.#fresh();
    session.seq = 1;
    return session;
  }

  #fresh(): Session {
    this.#created += 1;
    return { id: `${this.#prefix}-${this.#created}`, seq: 0 };
  }
}

/** The `x-request-id` header value of `session`'s current write: `<client id>:<seq>`. */
export function requestId(session: Session): string {
  return `${session.id}:${session.seq}`;
}
