/**
 * Changes to who is in a cluster and who leads it, as the driver carries them out: adding and
 * removing members (each through the log, leaving a joint configuration before answering),
 * transferring leadership, and the hand-off a leader starts on shutdown or when its disk fails.
 *
 * @module
 */
import { isJoint, type NodeId, NONE, type Raft } from "../raft/mod.ts";
import { encodeMemberContext, type KvStateMachine } from "../storage/mod.ts";
import type { DiskFailure } from "./_disk_failure.ts";
import type { NodeLog } from "./_driver_options.ts";
import type { IncarnationRegistry } from "./_incarnations.ts";
import type { MemberSpec } from "./service.ts";

/** What membership changes need from the driver. */
export interface MembershipHost {
  readonly nodeId: NodeId;
  /** The core (created after this object, hence a function). */
  raft(): Raft;
  /** The applied state. */
  sm(): KvStateMachine;
  readonly disk: DiskFailure;
  readonly incarnations: IncarnationRegistry;
  readonly log: NodeLog;
  /** Whether the node closed. */
  closed(): boolean;
  /** Runs the Ready loop. */
  kick(): void;
  /** Sends what needs no persist at the end of this turn. */
  scheduleSend(): void;
  /** Resolves once the proposal at `p` applies (rejects if another term's entry does). */
  waitProposal(p: { index: number; term: number }, what: string): Promise<unknown>;
  /** Resolves once `until()` holds after an apply. */
  waitApplied(until: () => boolean, what: string, timeoutMs?: number): Promise<void>;
}

/** The driver's membership and leadership operations. */
export class MembershipChanges {
  readonly #host: MembershipHost;

  /** Creates them over the driver. */
  constructor(host: MembershipHost) {
    this.#host = host;
  }

  /** Adds a voter or learner (or promotes a learner); nothing to do when it is one already. */
  async add(member: MemberSpec): Promise<void> {
    const raft = this.#host.raft();
    const m = raft.membership;
    const isLearner = m.learners.includes(member.id);
    const type = member.voter ? "addVoter" : "addLearner";
    if (!member.voter && isLearner) return; // already a learner
    if (member.voter && m.voters.includes(member.id) && !isJoint(m)) return; // already a voter
    // The addresses take effect when the config entry is appended (the driver's
    // #noteAddresses), so a refused change never redirects a member's traffic.
    const context = encodeMemberContext({ [member.id]: { raft: member.raft, http: member.http } });
    await this.#change(() => raft.proposeMembership([{ type, id: member.id }], context));
  }

  /** Removes a member. */
  async remove(id: NodeId): Promise<void> {
    await this.#change(() => this.#host.raft().proposeMembership([{ type: "remove", id }]));
    // A removed member may come back with a new data directory (as a joining member). If
    // this node just removed itself, the next leader forgets the record instead.
    await this.#host.incarnations.removed(id);
  }

  async #change(propose: () => { index: number; term: number }): Promise<void> {
    const h = this.#host;
    if (h.disk.failed) throw h.disk.error("The membership change was refused");
    const proposed = propose();
    h.kick();
    await h.waitProposal(proposed, "The membership change");
    // A voter change goes through a joint configuration, which the leader leaves by itself.
    await h.waitApplied(() => !isJoint(h.sm().membership), "Leaving the joint configuration");
  }

  /** Transfers leadership to `to`; resolves once it leads. */
  async transferLeader(to: NodeId): Promise<void> {
    const raft = this.#host.raft();
    raft.transferLeader(to);
    this.#host.kick();
    await this.#host.waitApplied(() => raft.leader === to, `The transfer to ${to}`);
  }

  /**
   * When leader, hands leadership to the most up-to-date voter and waits until this node no
   * longer leads or `timeoutMs` passes. Resolves whether it no longer leads.
   */
  async handOff(timeoutMs: number): Promise<boolean> {
    const raft = this.#host.raft();
    if (this.#host.closed()) return raft.role !== "leader";
    if (raft.role !== "leader") return true;
    const target = this.startHandOff();
    if (target === undefined) return false;
    try {
      await this.#host.waitApplied(
        () => raft.role !== "leader",
        `Handing leadership to ${target}`,
        timeoutMs,
      );
    } catch {
      // Timed out: the caller stops anyway; the others elect a leader by timeout.
    }
    return raft.role !== "leader";
  }

  /** While the disk fails, a leader keeps trying to hand leadership to a caught-up voter (a
   * transfer not done in an election timeout is abandoned by the core, then tried again). */
  stepAside(): void {
    const raft = this.#host.raft();
    if (this.#host.closed() || raft.role !== "leader") return;
    if (raft.status().leadTransferee !== NONE) return;
    const to = this.startHandOff();
    if (to !== undefined) this.#host.log("info", "Handing leadership off: the disk fails", { to });
  }

  /** Starts a transfer to the voter whose log matches furthest; answers it, if any. */
  startHandOff(): NodeId | undefined {
    const h = this.#host;
    const raft = h.raft();
    const target = raft.status().progress
      .filter((p) => p.id !== h.nodeId && p.voter)
      .sort((a, b) => b.match - a.match)[0]?.id;
    if (target === undefined) return undefined; // a single voter has no one to hand to
    try {
      raft.transferLeader(target);
    } catch (error) {
      h.log("warning", "Cannot hand off leadership", { error: String(error) });
      return undefined;
    }
    h.scheduleSend();
    h.kick();
    return target;
  }
}
