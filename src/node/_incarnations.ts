/**
 * The cluster's record of each member's data-directory incarnation. A member whose data
 * directory was wiped comes back with a new incarnation; letting it vote again would count a
 * log that lost acknowledged entries. The leader records each member's incarnation (from its
 * hello) in the replicated state, so every member refuses a peer that presents another one.
 */
import { type Membership, membersOf, type NodeId } from "../raft/mod.ts";
import type { KvCommand, KvValue } from "../storage/mod.ts";
import { decodeIncarnation, encodeIncarnation, incarnationKey } from "./_system_keys.ts";

/** What the registry needs from the driver. */
export interface IncarnationHost {
  /** This node and its own incarnation. */
  readonly nodeId: NodeId;
  readonly incarnation: string;
  readonly clusterId: string;
  /** Reads the applied state. */
  get(key: Uint8Array): KvValue | undefined;
  /** Keys under a prefix in the applied state. */
  keys(prefix: Uint8Array): Uint8Array[];
  /** The applied membership. */
  membership(): Membership;
  /** Whether this node leads (and is running). */
  leads(): boolean;
  /** Replicates a system command; resolves once applied, never rejects. */
  write(command: KvCommand): Promise<void>;
}

/** Verifies peers against the records and, on the leader, keeps the records current. */
export class IncarnationRegistry {
  readonly #host: IncarnationHost;
  /** Incarnations peers presented in their hello, for the leader to record. */
  readonly #seen = new Map<NodeId, string>();
  /** Records proposed and not yet applied (no duplicate proposals). */
  readonly #proposing = new Set<NodeId>();
  /** Peers refused so far. */
  refused = 0;

  /** Creates the registry over the driver. */
  constructor(host: IncarnationHost) {
    this.#host = host;
  }

  /** The refusal reason for a peer presenting `incarnation`, or undefined to accept it. */
  verify(nodeId: NodeId, incarnation: string): string | undefined {
    const recorded = this.#host.get(incarnationKey(nodeId));
    if (recorded === undefined) return undefined;
    if (decodeIncarnation(recorded.value) === incarnation) return undefined;
    this.refused++;
    // The recorded incarnation is not in the reason: it travels to the peer, and without a
    // cluster secret it is all a forger would need to pass as that member.
    return `its data directory was recreated (incarnation ${incarnation} is not the one ` +
      `cluster ${this.#host.clusterId} recorded); remove it with DELETE /v1/members/${nodeId} ` +
      `and add it back as a joining member (see docs/operations.md)`;
  }

  /** A peer completed a hello presenting `incarnation`. */
  note(nodeId: NodeId, incarnation: string): void {
    this.#seen.set(nodeId, incarnation);
    this.record();
  }

  /** A member was removed: its record goes, so it can come back with a new data directory. */
  removed(nodeId: NodeId): Promise<void> {
    this.#seen.delete(nodeId);
    return this.forgetRemoved();
  }

  /**
   * On the leader: proposes a record for each member (itself included) seen but not recorded.
   * Call when this node becomes leader and whenever the membership changes.
   */
  record(): void {
    const host = this.#host;
    if (!host.leads()) return;
    this.forgetRemoved();
    const seen = new Map(this.#seen);
    seen.set(host.nodeId, host.incarnation);
    const members = new Set(membersOf(host.membership()));
    for (const [id, incarnation] of seen) {
      // Only members: a removed node that still calls must not be recorded again, or it
      // could not come back with a new data directory.
      if (!members.has(id) || this.#proposing.has(id)) continue;
      if (host.get(incarnationKey(id)) !== undefined) continue;
      this.#proposing.add(id);
      const key = incarnationKey(id);
      host.write({
        checks: [{ key, rev: 0 }],
        mutations: [{ type: "set", key, value: encodeIncarnation(incarnation) }],
      }).finally(() => this.#proposing.delete(id));
    }
  }

  /** On the leader: deletes the records of nodes that are no longer members. */
  forgetRemoved(): Promise<void> {
    const host = this.#host;
    if (!host.leads()) return Promise.resolve();
    const members = new Set(membersOf(host.membership()));
    const prefix = incarnationKey("");
    const stale = host.keys(prefix).filter((key) =>
      !members.has(new TextDecoder().decode(key.subarray(prefix.length)))
    );
    if (stale.length === 0) return Promise.resolve();
    return host.write({ checks: [], mutations: stale.map((key) => ({ type: "delete", key })) });
  }
}
