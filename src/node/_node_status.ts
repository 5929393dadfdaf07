/**
 * The parts of `GET /v1/status` computed from the core's and the state machine's state: the
 * member rows, and the keys and bytes of the user's data (koi's own records apart).
 *
 * @module
 */
import type { RaftStatus } from "../raft/mod.ts";
import type { KvStateMachine } from "../storage/mod.ts";
import type { MemberStatus } from "./service.ts";
import { SYSTEM_KEY_BYTE } from "./_system_keys.ts";

/** The prefix of koi's own records, which status counts apart from the user's keys. */
const SYSTEM_PREFIX = new Uint8Array([SYSTEM_KEY_BYTE]);
/** More than the system records a cluster ever holds (one per member). */
const SYSTEM_KEYS_COUNTED_MAX = 100_000;

/** Every member of the membership in effect, sorted, with how far its log matches. */
export function memberRows(st: RaftStatus): MemberStatus[] {
  const matchOf = new Map(st.progress.map((p) => [p.id, p.match]));
  const m = st.membership;
  return [...new Set([...m.voters, ...m.outgoing, ...m.learners])].sort().map((id) => ({
    id,
    voter: m.voters.includes(id) || m.outgoing.includes(id),
    match: matchOf.get(id) ?? 0,
  }));
}

/** Keys and bytes of the state, without koi's own records (a handful: one per member). */
export function userKeyCounts(sm: KvStateMachine): { keys: number; bytes: number } {
  const system = sm.list({ prefix: SYSTEM_PREFIX, limit: SYSTEM_KEYS_COUNTED_MAX });
  let bytes = sm.bytes;
  for (const { key } of system.items) bytes -= key.length + (sm.get(key)?.value.length ?? 0);
  return { keys: sm.size - system.items.length, bytes };
}
