import assert from "node:assert/strict";
import type { Message } from "../raft/mod.ts";
import { encodeMessage, MalformedMessageError } from "./_codec.ts";
import { encodeFrame, FRAME_HEADER_BYTES } from "./_frame.ts";
import {
  bigAppend,
  closeAll,
  closedByPeer,
  closeQuietly,
  connectAll,
  helloFrame,
  loopback,
  ping,
  rawConnect,
  startNode,
  type TestNode,
  waitFor,
  writeRaw,
} from "./_test_util.ts";
import { HANDSHAKES_PENDING_MAX, PeerTransport } from "./transport.ts";

const SECRET = "a cluster secret of some length";

function seqs(received: readonly Message[]): number[] {
  return received.flatMap((m) => m.type === "heartbeatResp" ? [m.readSeq] : []);
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from }, (_, i) => from + i);
}

function logged(node: TestNode, pattern: RegExp): boolean {
  return node.logs.some((line) => pattern.test(line.message));
}

/** A port nothing listens on (bound by the OS, then released). */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  return port;
}

Deno.test("two nodes exchange many messages both ways, in order, with 1 MiB entries", async () => {
  let a: TestNode | undefined;
  let b: TestNode | undefined;
  try {
    a = await startNode("a");
    b = await startNode("b");
    connectAll([a, b]);
    const n = 2_000;
    const big = [bigAppend("a", "b", 100, 1 << 20), bigAppend("a", "b", 101, 1 << 20)];
    for (let i = 0; i < n; i++) {
      a.transport.send([ping("a", "b", i)]);
      b.transport.send([ping("b", "a", i)]);
      if (i === n / 2) a.transport.send(big);
    }
    const [na, nb] = [a, b];
    await waitFor(() => nb.received.length === n + 2 && na.received.length === n, 5_000, "all");
    assert.deepEqual(seqs(a.received), range(0, n));
    assert.deepEqual(seqs(b.received), range(0, n));
    assert.deepEqual(b.received.slice(n / 2 + 1, n / 2 + 3), big); // in place, byte for byte
    assert.ok(a.received.every((m) => m.from === "b" && m.to === "a"));
    const [sa, sb] = [a.transport.stats(), b.transport.stats()];
    // + the hello a sent to b and the welcome a sent on b's connection (and vice versa).
    assert.equal(sa.framesSent, n + 2 + 1 + 1);
    assert.equal(sb.framesReceived, n + 2 + 1 + 1);
    assert.equal(sa.bytesSent, sb.bytesReceived);
    assert.equal(sa.outboundConnected, 1);
    assert.equal(sb.inboundConnected, 1);
    assert.equal(sa.connectionsRefused + sb.connectionsRefused + sa.malformedFrames, 0);
  } finally {
    await closeAll([a, b]);
  }
});

Deno.test("messages queued in one turn go out in one write", async () => {
  let a: TestNode | undefined;
  let b: TestNode | undefined;
  try {
    a = await startNode("a");
    b = await startNode("b");
    connectAll([a, b]);
    a.transport.send([ping("a", "b", 0)]);
    const nb = b;
    await waitFor(() => nb.received.length === 1, 5_000, "first message");
    const writes = a.transport.stats().writes;
    a.transport.send(range(1, 51).map((i) => ping("a", "b", i)));
    for (let i = 51; i < 101; i++) a.transport.send([ping("a", "b", i)]);
    await waitFor(() => nb.received.length === 101, 5_000, "batch");
    assert.deepEqual(seqs(b.received), range(0, 101));
    assert.equal(a.transport.stats().writes, writes + 1);
  } finally {
    await closeAll([a, b]);
  }
});

Deno.test("with a cluster secret, peers that know it exchange messages", async () => {
  let a: TestNode | undefined;
  let b: TestNode | undefined;
  try {
    a = await startNode("a", { secret: SECRET });
    b = await startNode("b", { secret: SECRET });
    connectAll([a, b]);
    a.transport.send([ping("a", "b", 1)]);
    b.transport.send([ping("b", "a", 2)]);
    const [na, nb] = [a, b];
    await waitFor(() => na.received.length === 1 && nb.received.length === 1, 5_000, "both");
    assert.deepEqual(seqs(a.received), [2]);
    assert.deepEqual(seqs(b.received), [1]);
    // a receives: b's hello and message on b's connection, the challenge and the welcome
    // on its own.
    assert.equal(a.transport.stats().framesReceived, 1 + 1 + 1 + 1);
  } finally {
    await closeAll([a, b]);
  }
});

Deno.test("a wrong or missing secret is refused; the listener still accepts a good peer", async () => {
  const nodes: (TestNode | undefined)[] = [];
  try {
    const b = await startNode("b", { secret: SECRET });
    nodes.push(b);
    const cases = [{ secret: "another secret, not the one" }, {}];
    for (const [i, options] of cases.entries()) {
      const bad = await startNode("a", options);
      nodes.push(bad);
      connectAll([bad, b]);
      bad.transport.send([ping("a", "b", 1)]);
      await waitFor(() => b.transport.stats().connectionsRefused > i, 5_000, `refusal ${i}`);
      await waitFor(() => logged(bad, /Cannot connect to peer b/), 5_000, "dialer's warning");
      await bad.transport.close();
    }
    assert.ok(logged(b, /wrong MAC/), JSON.stringify(b.logs));
    assert.ok(logged(b, /no MAC/), JSON.stringify(b.logs));
    const good = await startNode("a", { secret: SECRET });
    nodes.push(good);
    connectAll([good, b]);
    good.transport.send([ping("a", "b", 7)]);
    await waitFor(() => b.received.length === 1, 5_000, "good peer");
    assert.deepEqual(seqs(b.received), [7]);
  } finally {
    await closeAll(nodes);
  }
});

Deno.test("a peer of another cluster is refused", async () => {
  let a: TestNode | undefined;
  let b: TestNode | undefined;
  try {
    a = await startNode("a", { clusterId: "other" });
    b = await startNode("b");
    connectAll([a, b]);
    a.transport.send([ping("a", "b", 1)]);
    const nb = b;
    await waitFor(() => nb.transport.stats().connectionsRefused > 0, 5_000, "refusal");
    assert.ok(logged(b, /wrong cluster "other", this is "c"/));
    assert.deepEqual(b.received, []);
  } finally {
    await closeAll([a, b]);
  }
});

Deno.test("a connection without a hello is closed after the handshake timeout", async () => {
  let a: TestNode | undefined;
  let b: TestNode | undefined;
  let raw: Deno.TcpConn | undefined;
  try {
    b = await startNode("b", { handshakeTimeoutMs: 100 });
    raw = await rawConnect(b.port);
    assert.equal(await closedByPeer(raw), true);
    assert.ok(logged(b, /no hello within 100 ms/));
    // A dialer that expects a challenge from a listener without a secret: both time out.
    a = await startNode("a", { secret: SECRET, handshakeTimeoutMs: 100 });
    connectAll([a, b]);
    a.transport.send([ping("a", "b", 1)]);
    const [na, nb] = [a, b];
    await waitFor(() => nb.transport.stats().connectionsRefused >= 2, 5_000, "refusal");
    await waitFor(() => logged(na, /no handshake within 100 ms/), 5_000, "dialer timeout");
  } finally {
    closeQuietly(raw);
    await closeAll([a, b]);
  }
});

Deno.test("hellos from unknown senders or for another receiver are refused", async () => {
  let b: TestNode | undefined;
  const raws: Deno.TcpConn[] = [];
  try {
    b = await startNode("b", { peers: new Map([["a", loopback(1)]]) });
    const hellos = [
      { cluster: "c", from: "zz", to: "b" },
      { cluster: "c", from: "a", to: "x" },
      { cluster: "c", from: "b", to: "b" },
    ];
    for (const hello of hellos) {
      const raw = await rawConnect(b.port);
      raws.push(raw);
      await writeRaw(raw, helloFrame(hello));
      assert.equal(await closedByPeer(raw), true, JSON.stringify(hello));
    }
    assert.equal(b.transport.stats().connectionsRefused, 3);
    assert.ok(logged(b, /unknown sender "zz"/));
    assert.ok(logged(b, /names receiver "x", this is "b"/));
  } finally {
    raws.forEach(closeQuietly);
    await closeAll([b]);
  }
});

Deno.test("bad frames after the hello close the connection; good ones are delivered", async () => {
  let b: TestNode | undefined;
  const raws: Deno.TcpConn[] = [];
  const hello = helloFrame({ cluster: "c", from: "a", to: "b" });
  const header = (length: number) => {
    const bytes = new Uint8Array(4);
    new DataView(bytes.buffer).setUint32(0, length);
    return bytes;
  };
  try {
    b = await startNode("b", { peers: new Map([["a", loopback(1)]]), frameBytesMax: 1_000 });
    const bad: [Uint8Array, RegExp][] = [
      [encodeFrame(encodeMessage(ping("x", "b", 1))), /heartbeatResp from x to b/],
      [encodeFrame(encodeMessage(ping("a", "q", 1))), /from a to q/],
      [header(1_001), /Frame too large: body of 1001 bytes/],
      [header(0), /the body length is 0/],
      [encodeFrame([99, "a", "b", 1]), /unknown type code 99/],
      [encodeFrame({ type: "heartbeatResp" }), /not an array/],
      [new Uint8Array([0, 0, 0, 1, 0xc1]), /not valid msgpack/],
    ];
    for (const [bytes, reason] of bad) {
      const raw = await rawConnect(b.port);
      raws.push(raw);
      await writeRaw(raw, new Uint8Array([...hello, ...bytes]));
      assert.equal(await closedByPeer(raw), true, String(reason));
      assert.ok(logged(b, reason), `${reason}: ${JSON.stringify(b.logs)}`);
    }
    assert.equal(b.transport.stats().malformedFrames, bad.length);
    assert.deepEqual(b.received, []);
    const raw = await rawConnect(b.port);
    raws.push(raw);
    const m = ping("a", "b", 5);
    await writeRaw(raw, new Uint8Array([...hello, ...encodeFrame(encodeMessage(m))]));
    const nb = b;
    await waitFor(() => nb.received.length === 1, 5_000, "raw message");
    assert.deepEqual(b.received, [m]);
  } finally {
    raws.forEach(closeQuietly);
    await closeAll([b]);
  }
});

Deno.test("a node reconnects after its peer restarts on the same port", async () => {
  let a: TestNode | undefined;
  let b: TestNode | undefined;
  try {
    a = await startNode("a");
    b = await startNode("b");
    connectAll([a, b]);
    a.transport.send([ping("a", "b", 1)]);
    let nb = b;
    await waitFor(() => nb.received.length === 1, 5_000, "before restart");
    const port = b.port;
    await b.transport.close();
    const na = a;
    await waitFor(() => na.transport.stats().outboundConnected === 0, 5_000, "disconnect seen");
    b = await startNode("b", { listen: loopback(port), peers: new Map([["a", loopback(a.port)]]) });
    nb = b;
    // Like Raft's heartbeats: send until one arrives (one sent into the dying socket is lost).
    let seq = 2;
    await waitFor(
      () => {
        na.transport.send([ping("a", "b", seq++)]);
        return nb.received.length > 0;
      },
      5_000,
      "after restart",
    );
    assert.ok(a.transport.stats().reconnects >= 1);
    const got = seqs(b.received);
    assert.deepEqual(got, range(got[0], got[0] + got.length)); // in order, no gaps
  } finally {
    await closeAll([a, b]);
  }
});

Deno.test("a full queue drops new messages and counts them; the rest arrive once the peer is up", async () => {
  let a: TestNode | undefined;
  let b: TestNode | undefined;
  try {
    const port = freePort();
    a = await startNode("a", {
      frameBytesMax: 1_000,
      sendQueueBytesMax: 2_000,
      peers: new Map([["b", loopback(port)]]),
    });
    // Sequence numbers 1000..1299 all take 3 bytes: every frame has the same size.
    const frameBytes = encodeFrame(encodeMessage(ping("a", "b", 1_000))).length;
    a.transport.send(range(1_000, 1_300).map((i) => ping("a", "b", i)));
    const kept = Math.floor(2_000 / frameBytes);
    const stats = a.transport.stats();
    assert.equal(stats.dropsQueueFull, 300 - kept);
    assert.equal(stats.queuedBytes, kept * frameBytes);
    const na = a;
    await waitFor(() => na.transport.stats().reconnects >= 1, 5_000, "failed dials");
    b = await startNode("b", { listen: loopback(port), peers: new Map([["a", loopback(a.port)]]) });
    const nb = b;
    await waitFor(() => nb.received.length === kept, 5_000, "queued messages");
    assert.deepEqual(seqs(b.received), range(1_000, 1_000 + kept));
  } finally {
    await closeAll([a, b]);
  }
});

Deno.test("send drops messages to unknown peers and oversized ones, refuses invalid ones", async () => {
  let a: TestNode | undefined;
  try {
    a = await startNode("a", { frameBytesMax: 1_000, sendQueueBytesMax: 10_000 });
    a.transport.setPeers(new Map([["b", loopback(freePort())], ["a", loopback(a.port)]]));
    a.transport.send([ping("a", "zz", 1), ping("a", "a", 2)]); // unknown, and this node itself
    a.transport.send([bigAppend("a", "b", 1, 2_000)]);
    const stats = a.transport.stats();
    assert.equal(stats.dropsUnknownPeer, 2);
    assert.equal(stats.dropsTooLarge, 1);
    assert.equal(stats.queuedBytes, 0);
    assert.ok(logged(a, /Frame too large/));
    assert.throws(() => a!.transport.send([ping("b", "b", 1)]), RangeError);
    const invalid = { ...ping("a", "b", 1), readSeq: -1 } as Message;
    assert.throws(() => a!.transport.send([invalid]), MalformedMessageError);
    await a.transport.close();
    a.transport.send([ping("a", "b", 1)]); // ignored after close
    assert.equal(a.transport.stats().queuedBytes, 0);
    await a.transport.close(); // idempotent
  } finally {
    await closeAll([a]);
  }
});

Deno.test("setPeers closes the links of removed peers and redials moved ones", async () => {
  let a: TestNode | undefined;
  let b: TestNode | undefined;
  let b2: TestNode | undefined;
  try {
    a = await startNode("a");
    b = await startNode("b");
    connectAll([a, b]);
    a.transport.send([ping("a", "b", 1)]);
    const [na, nb] = [a, b];
    await waitFor(() => nb.received.length === 1, 5_000, "first");
    b.transport.setPeers(new Map()); // b forgets a: a's connection is closed, its redials refused
    await waitFor(() => nb.transport.stats().inboundConnected === 0, 5_000, "inbound closed");
    // Until a has seen its connection close, a message may go into the dying socket: resend.
    await waitFor(
      () => {
        na.transport.send([ping("a", "b", 2)]);
        return nb.transport.stats().connectionsRefused >= 1;
      },
      5_000,
      "refused",
    );
    // "b" moves to a new address: a drops its old link and dials the new one.
    b2 = await startNode("b", { peers: new Map([["a", loopback(a.port)]]) });
    a.transport.setPeers(new Map([["b", loopback(b2.port)]]));
    const nb2 = b2;
    await waitFor(
      () => {
        na.transport.send([ping("a", "b", 3)]);
        return nb2.received.length > 0;
      },
      5_000,
      "moved peer",
    );
    a.transport.setPeers(new Map());
    await waitFor(() => na.transport.stats().outboundConnected === 0, 5_000, "link closed");
    const drops = a.transport.stats().dropsUnknownPeer;
    a.transport.send([ping("a", "b", 4)]);
    assert.equal(a.transport.stats().dropsUnknownPeer, drops + 1);
    assert.deepEqual(b.received.length, 1);
  } finally {
    await closeAll([a, b, b2]);
  }
});

Deno.test("an onMessage that throws closes that connection, logged, and nothing else", async () => {
  let a: TestNode | undefined;
  let b: TestNode | undefined;
  try {
    let calls = 0;
    a = await startNode("a");
    b = await startNode("b", {
      onMessage: () => {
        if (++calls === 1) throw new Error("boom");
      },
    });
    connectAll([a, b]);
    const na = a;
    await waitFor(
      () => {
        na.transport.send([ping("a", "b", calls)]);
        return calls >= 2;
      },
      5_000,
      "redelivery after the throw",
    );
    assert.ok(logged(b, /onMessage threw/));
  } finally {
    await closeAll([a, b]);
  }
});

Deno.test("a full set of pending handshakes evicts the oldest one still waiting for its hello", async () => {
  let b: TestNode | undefined;
  const raws: Deno.TcpConn[] = [];
  try {
    b = await startNode("b", { handshakeTimeoutMs: 20_000, helloTimeoutMs: 20_000 });
    const nb = b;
    for (let i = 0; i < HANDSHAKES_PENDING_MAX; i++) raws.push(await rawConnect(b.port));
    await waitFor(() => nb.transport.stats().connectionsAccepted === HANDSHAKES_PENDING_MAX);
    const extra = await rawConnect(b.port);
    raws.push(extra);
    assert.equal(await closedByPeer(raws[0]), true, "the oldest is closed to make room");
    await waitFor(() => nb.transport.stats().connectionsAccepted === HANDSHAKES_PENDING_MAX + 1);
    assert.equal(await closedByPeer(extra, 100), false, "the new one is served");
    assert.ok(
      logged(b, new RegExp(`Closed a pending peer handshake from .*: ${HANDSHAKES_PENDING_MAX}`)),
      JSON.stringify(b.logs),
    );
  } finally {
    raws.forEach(closeQuietly);
    await closeAll([b]);
  }
});

Deno.test("close() mid-flight stops every loop, timer and connection", async () => {
  let a: TestNode | undefined;
  let b: TestNode | undefined;
  let raw: Deno.TcpConn | undefined;
  try {
    a = await startNode("a", { reconnectDelayMs: { min: 1_000, max: 2_000 } });
    b = await startNode("b", { handshakeTimeoutMs: 60_000, helloTimeoutMs: 60_000 });
    connectAll([a, b]);
    a.transport.setPeers(new Map([["b", loopback(b.port)], ["d", loopback(freePort())]]));
    raw = await rawConnect(b.port); // stuck in b's handshake
    a.transport.send([ping("a", "b", 1), ping("a", "d", 1)]); // d: refused, then a long backoff
    const [na, nb] = [a, b];
    await waitFor(() => nb.received.length === 1, 5_000, "link up");
    await waitFor(() => logged(na, /Cannot connect to peer d/), 5_000, "backoff");
    await Promise.all([a.transport.close(), b.transport.close()]);
    assert.equal(await closedByPeer(raw), true);
    assert.equal(a.transport.stats().outboundConnected, 0);
    assert.equal(b.transport.stats().inboundConnected, 0);
  } finally {
    closeQuietly(raw);
    await closeAll([a, b]);
  }
});

Deno.test("PeerTransport refuses invalid options", () => {
  const base = {
    clusterId: "c",
    nodeId: "a",
    listen: loopback(1),
    peers: new Map(),
    onMessage: () => {},
  };
  assert.throws(() => new PeerTransport({ ...base, nodeId: "" }), RangeError);
  assert.throws(() => new PeerTransport({ ...base, secret: "" }), RangeError);
  assert.throws(() => new PeerTransport({ ...base, frameBytesMax: 0 }), RangeError);
  assert.throws(
    () => new PeerTransport({ ...base, frameBytesMax: 1_000, sendQueueBytesMax: 1_000 }),
    /must hold one largest frame \(1004 bytes\)/,
  );
  assert.throws(
    () => new PeerTransport({ ...base, reconnectDelayMs: { min: 0, max: 5 } }),
    RangeError,
  );
  assert.throws(
    () => new PeerTransport({ ...base, reconnectDelayMs: { min: 9, max: 5 } }),
    RangeError,
  );
  assert.throws(() => new PeerTransport({ ...base, handshakeTimeoutMs: 0 }), RangeError);
  assert.throws(() => new PeerTransport({ ...base, helloTimeoutMs: 0 }), RangeError);
});

Deno.test("frames a node sends have the documented layout", () => {
  const frame = encodeFrame(encodeMessage(ping("a", "b", 3)));
  const length = new DataView(frame.buffer).getUint32(0, false);
  assert.equal(length, frame.length - FRAME_HEADER_BYTES);
});
