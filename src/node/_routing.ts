/**
 * Which keys a node serves: config.toml's table, until the cluster's replicated routing state
 * (docs/resharding.md) takes over when a move begins. Reads check again after their barrier,
 * and listings skip the keys the store holds without owning them during a move.
 *
 * @module
 */
import type { KvStateMachine } from "../storage/mod.ts";
import { WrongShardError } from "./errors.ts";
import type { ListPage, RoutingStatus } from "./service.ts";
import { encodeBase64Url } from "./_http_keys.ts";

/** The routing decisions of one node, over its current state machine. */
export class NodeRouting {
  /**
   * @param clusterId the node's cluster
   * @param configEpoch config.toml's routing epoch
   * @param configOwner config.toml's table
   * @param stateMachine the cluster's state machine now (a snapshot install replaces it), with
   * its replicated routing state
   */
  constructor(
    readonly clusterId: string,
    readonly configEpoch: number,
    readonly configOwner: (key: Uint8Array) => string,
    readonly stateMachine: () => KvStateMachine,
  ) {}

  get sm(): KvStateMachine {
    return this.stateMachine();
  }

  /**
   * Whether the replicated routing state decides: once it exists, always. The writes of this
   * cluster are checked against it when they apply, so reads must be too; a config.toml with
   * a newer epoch (a drained cluster started again with its old data, say) must not make the
   * node serve keys its replicated state says are elsewhere, as absent.
   */
  #replicated(): boolean {
    return this.sm.routing !== undefined;
  }

  /** The epoch clients should route by. */
  epoch(): number {
    return this.#replicated() ? this.sm.routing!.epoch : this.configEpoch;
  }

  /** The replicated routing state for `GET /v1/status`, or undefined before any move. */
  status(): RoutingStatus | undefined {
    const r = this.sm.routing;
    if (r === undefined) return undefined;
    const cursor = (c: string | null) => {
      if (c === null) return null;
      const bytes = new Uint8Array(c.length);
      for (let i = 0; i < c.length; i++) bytes[i] = c.charCodeAt(i);
      return encodeBase64Url(bytes);
    };
    return {
      epoch: r.table.epoch,
      revBase: this.sm.revBase,
      ...(r.move === undefined ? {} : {
        move: {
          epoch: r.move.table.epoch,
          fenced: cursor(r.move.fenced),
          received: Object.fromEntries([...r.move.received].map(([id, c]) => [id, cursor(c)])),
        },
      }),
    };
  }

  /** Whether this cluster owns `key`, and who does. */
  ownership(key: Uint8Array): { owned: boolean; owner: string } {
    if (this.#replicated()) return this.sm.ownership(key)!;
    const owner = this.configOwner(key);
    return { owned: owner === this.clusterId, owner };
  }

  /** Throws `WrongShardError` unless this cluster owns `key` (now: after a read barrier). */
  checkStillOwned(key: Uint8Array): void {
    const o = this.ownership(key);
    if (o.owned) return;
    throw new WrongShardError(
      `Wrong shard: the key moved to cluster ${o.owner} (routing epoch ${this.epoch()})`,
      this.epoch(),
      o.owner,
    );
  }

  /**
   * A page of the keys this cluster owns. During a move the store also holds keys it does
   * not own (copies staged here, keys fenced and not dropped yet): they are skipped. The
   * admin keeps them to about one batch per source, so the pages read past them are few.
   */
  ownedPage(options: { prefix: Uint8Array; after?: Uint8Array; limit: number }): ListPage {
    if (this.sm.routing?.move === undefined) return this.sm.list(options);
    const items: ListPage["items"][number][] = [];
    let after = options.after;
    for (;;) {
      const page = this.sm.list({ ...options, after, limit: options.limit - items.length });
      for (const item of page.items) if (this.ownership(item.key).owned) items.push(item);
      if (!page.more || items.length >= options.limit) return { items, more: page.more };
      after = page.items.at(-1)!.key;
    }
  }
}
