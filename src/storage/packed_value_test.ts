/** Values are held apart from the buffers they were decoded from, packed when small. */
import assert from "node:assert/strict";
import type { Entry } from "../raft/mod.ts";
import { encodeCommand } from "./kv_command.ts";
import { KvStateMachine } from "./kv_state_machine.ts";
import { PACKED_VALUE_BYTES_MAX, StoredValue } from "./_packed_value.ts";

Deno.test("StoredValue: every byte value round-trips, packed or copied, and its size is its length", () => {
  const all = Uint8Array.from({ length: 256 }, (_, i) => i);
  for (
    const bytes of [new Uint8Array(0), all, new Uint8Array(PACKED_VALUE_BYTES_MAX + 1).fill(255)]
  ) {
    const stored = new StoredValue(bytes, 7);
    assert.deepEqual(stored.value, bytes);
    assert.equal(stored.size, bytes.length);
    assert.equal(stored.rev, 7);
  }
});

Deno.test("the state machine keeps no view of the entry a value came from", () => {
  const sm = new KvStateMachine();
  const small = new Uint8Array(100).fill(1);
  const large = new Uint8Array(PACKED_VALUE_BYTES_MAX + 10).fill(2);
  const entries: Entry[] = [small, large].map((value, i) => ({
    index: i + 1,
    term: 1,
    type: "normal",
    data: encodeCommand({ checks: [], mutations: [{ type: "set", key: Uint8Array.of(i), value }] }),
  }));
  for (const e of entries) sm.apply(e);
  // The frame or log entry a value was decoded from is reused or freed: the state keeps its own.
  for (const e of entries) e.data.fill(0);
  assert.deepEqual(sm.get(Uint8Array.of(0))?.value, small);
  assert.deepEqual(sm.get(Uint8Array.of(1))?.value, large);
  assert.equal(sm.bytes, 2 + small.length + large.length);
  // A snapshot decodes into values of their own too.
  const snapshot = sm.encodeSnapshot();
  const restored = KvStateMachine.decodeSnapshot(snapshot);
  snapshot.fill(0);
  assert.deepEqual(restored.get(Uint8Array.of(0))?.value, small);
  assert.deepEqual(restored.get(Uint8Array.of(1))?.value, large);
});
