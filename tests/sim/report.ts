/**
 * Human-readable views of a run for failure messages and `SIM_TRACE=1`.
 *
 * @module
 */
import type { Ready } from "../../src/raft/mod.ts";
import type { SimNode } from "./node.ts";

/** One line per node: role, term, commit, applied, membership, and a leader's progress. */
export function describeNodes(nodes: Iterable<SimNode>): string {
  return [...nodes].map((n) => {
    if (n.reaped) return `${n.id}:reaped`;
    if (n.raft === undefined) return `${n.id}:down`;
    const s = n.raft.status();
    return `${n.id}:${s.role}/t${s.term}/c${s.commit}/a${n.sm.applied}/v[${s.membership.voters}]` +
      (s.membership.outgoing.length > 0 ? `/o[${s.membership.outgoing}]` : "") +
      (s.membership.learners.length > 0 ? `/l[${s.membership.learners}]` : "") +
      (s.role === "leader"
        ? ` {${s.progress.map((p) => `${p.id}:${p.state}/m${p.match}/n${p.next}`).join(",")}}` +
          `/first${s.firstIndex}`
        : "");
  }).join(" ");
}

/** Prints a persisted Ready: entries, hard and soft state, snapshot, messages. */
export function traceReady(now: number, node: SimNode, rd: Ready): void {
  const es = rd.entries.map((e) => {
    const m = e.membership;
    return `${e.index}/${e.term}` +
      (m === undefined ? "" : `C[${m.voters}|${m.outgoing}|${m.learners}]`);
  });
  const msgs = [...rd.messages, ...rd.messagesAfterPersist];
  console.log(
    `${now} ${node.id} persist ${es.join(",")} hs=${JSON.stringify(rd.hardState ?? {})}` +
      ` soft=${JSON.stringify(rd.softState ?? {})} snap=${rd.snapshot?.meta.index ?? "-"}` +
      ` msgs=${msgs.map((m) => `${m.type}>${m.to}`).join(",")}`,
  );
}
