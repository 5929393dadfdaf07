/**
 * Member identity in the hello: each side presents its incarnation (the id of its data
 * directory) and either side refuses a peer whose incarnation the cluster does not know.
 */
import assert from "node:assert/strict";
import { REFUSAL_REASON } from "./_hello.ts";
import { closeAll, connectAll, ping, startNode, type TestNode, waitFor } from "./_test_util.ts";
import type { PeerState } from "./_context.ts";

function stateText(s: PeerState): string {
  return "formed" in s ? (s.formed ? "formed" : "unformed") : "unreachable";
}

const REASON = "its data directory was recreated (incarnation new, the cluster recorded old)";

function warnings(node: TestNode): string[] {
  return node.logs.filter((l) => l.level === "warn").map((l) => l.message);
}

for (const secret of [undefined, "a cluster secret of some length"]) {
  const label = secret === undefined ? "without a secret" : "with a secret";

  Deno.test(`a refused incarnation gets no message through either way, one warning per side (${label})`, async () => {
    let a: TestNode | undefined;
    let b: TestNode | undefined;
    try {
      let refuse = true;
      const noted: string[] = [];
      const states: string[] = [];
      // a is the cluster's old member view: it refuses b's (new) incarnation.
      a = await startNode("a", {
        ...(secret === undefined ? {} : { secret }),
        incarnation: "inc-a",
        verifyPeer: (peer, incarnation) =>
          refuse && peer === "b" && incarnation === "inc-b" ? REASON : undefined,
        notePeer: (peer, incarnation) => noted.push(`${peer}=${incarnation}`),
        formed: () => true,
        onPeerState: (peer, state) => states.push(`a:${peer}=${stateText(state)}`),
      });
      b = await startNode("b", {
        ...(secret === undefined ? {} : { secret }),
        incarnation: "inc-b",
        notePeer: (peer, incarnation) => noted.push(`${peer}=${incarnation}`),
        formed: () => false,
        onPeerState: (peer, state) => states.push(`b:${peer}=${stateText(state)}`),
      });
      connectAll([a, b]);
      const [na, nb] = [a, b];
      // Both links redial with backoff: wait for several refusals in each direction.
      for (let i = 0; i < 10; i++) {
        na.transport.send([ping("a", "b", i)]);
        nb.transport.send([ping("b", "a", i)]);
      }
      await waitFor(
        () => na.transport.stats().connectionsRefused >= 6,
        5_000,
        "repeated refusals",
      );
      assert.deepEqual(na.received, []);
      assert.deepEqual(nb.received, []);
      assert.deepEqual(noted.filter((n) => n === "b=inc-b"), [], "a never notes b");
      // One warning on a for the whole episode (both directions share it), one on b.
      assert.deepEqual(warnings(na), [`Refusing peer b: ${REASON}`], JSON.stringify(na.logs));
      // The detailed reason (it may name the recorded incarnation) never leaves a: b only
      // gets the fixed text.
      assert.deepEqual(
        warnings(nb).filter((m) => m.includes("refuses")),
        [`Peer a refuses this node: ${REFUSAL_REASON}`],
        JSON.stringify(nb.logs),
      );
      assert.ok(nb.logs.every((l) => !l.message.includes("recorded old")), JSON.stringify(nb.logs));
      // A refusal says a is formed; b reports it. a learned b's state from b's hellos.
      assert.ok(states.includes("b:a=formed"), JSON.stringify(states));
      assert.ok(states.includes("a:b=unformed"), JSON.stringify(states));
      // Once accepted (say, after the operator re-added b), messages flow and both note it.
      refuse = false;
      na.transport.send([ping("a", "b", 100)]);
      nb.transport.send([ping("b", "a", 100)]);
      await waitFor(
        () => na.received.length > 0 && nb.received.length > 0,
        5_000,
        "messages after the refusal ends",
      );
      assert.ok(noted.includes("b=inc-b"), JSON.stringify(noted));
      assert.ok(noted.includes("a=inc-a"), JSON.stringify(noted));
    } finally {
      await closeAll([a, b]);
    }
  });
}

Deno.test("a new refusal episode warns again", async () => {
  let a: TestNode | undefined;
  let b: TestNode | undefined;
  try {
    let reason: string | undefined = "first reason";
    a = await startNode("a", { verifyPeer: () => reason });
    b = await startNode("b");
    connectAll([a, b]);
    const [na, nb] = [a, b];
    nb.transport.send([ping("b", "a", 1)]);
    await waitFor(() => na.transport.stats().connectionsRefused >= 2, 5_000, "refusals");
    reason = undefined;
    nb.transport.send([ping("b", "a", 2)]);
    await waitFor(() => na.received.length > 0, 5_000, "accepted");
    reason = "first reason";
    // The accepted link stays up; a new connection (b redials after a restart) is refused.
    nb.transport.setPeers(new Map());
    connectAll([na, nb]);
    nb.transport.send([ping("b", "a", 3)]);
    await waitFor(
      () => warnings(na).length === 2,
      5_000,
      `a second warning: ${JSON.stringify(na.logs)}`,
    );
  } finally {
    await closeAll([a, b]);
  }
});

Deno.test("an invalid own incarnation is a RangeError", async () => {
  await assert.rejects(() => startNode("a", { incarnation: "" }), RangeError);
  await assert.rejects(() => startNode("a", { incarnation: "x".repeat(129) }), RangeError);
});
