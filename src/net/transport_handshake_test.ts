/**
 * The handshake under attack (stalled and oversized handshakes, floods of them) and what a
 * handshake tells about a peer (`formed`, refusals, unreachable peers).
 */
import assert from "node:assert/strict";
import { type PeerState, THROTTLED_LOG_INTERVAL_MS, ThrottledLog } from "./_context.ts";
import { HELLO_FRAME_BYTES_MAX } from "./_connection.ts";
import {
  closeAll,
  closedByPeer,
  closeQuietly,
  connectAll,
  LOCALHOST,
  loopback,
  ping,
  rawConnect,
  readRawFrame,
  startNode,
  type TestNode,
  waitFor,
  writeRaw,
} from "./_test_util.ts";
import { HANDSHAKES_PENDING_MAX } from "./transport.ts";

const SECRET = "a cluster secret of some length";

/** The length prefix of a frame of `length` bytes (no body follows). */
function header(length: number): Uint8Array {
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setUint32(0, length);
  return bytes;
}

function logged(node: TestNode, pattern: RegExp): boolean {
  return node.logs.some((line) => pattern.test(line.message));
}

function warnings(node: TestNode, pattern: RegExp): string[] {
  return node.logs.filter((l) => l.level === "warn" && pattern.test(l.message)).map((l) =>
    l.message
  );
}

function stateText(s: PeerState): string {
  return "formed" in s ? (s.formed ? "formed" : "unformed") : "unreachable";
}

/** A port nothing listens on (bound by the OS, then released). */
function freePort(): number {
  const listener = Deno.listen({ hostname: LOCALHOST, port: 0 });
  const port = listener.addr.port;
  listener.close();
  return port;
}

const HUGE = 16_777_000; // just under FRAME_BYTES_MAX: accepted after the handshake

for (const secret of [undefined, SECRET]) {
  const label = secret === undefined ? "without a secret" : "with a secret";

  Deno.test(`F2a: before the hello, a large announced frame closes the connection at once (${label})`, async () => {
    let b: TestNode | undefined;
    let raw: Deno.TcpConn | undefined;
    try {
      // Long timeouts: only the size check can close the connection within the test.
      b = await startNode("b", {
        handshakeTimeoutMs: 30_000,
        helloTimeoutMs: 30_000,
        ...(secret === undefined ? {} : { secret }),
      });
      raw = await rawConnect(b.port);
      assert.ok(await writeRaw(raw, header(HUGE)));
      const started = performance.now();
      assert.equal(await closedByPeer(raw, 2_000), true, "closed without waiting for the body");
      assert.ok(performance.now() - started < 2_000);
      const pattern = new RegExp(
        `Frame too large: body of ${HUGE} bytes exceeds the limit of ${HELLO_FRAME_BYTES_MAX}`,
      );
      assert.ok(logged(b, pattern), JSON.stringify(b.logs));
    } finally {
      closeQuietly(raw);
      await closeAll([b]);
    }
  });
}

Deno.test("F2a: a dialer closes at once a listener that announces a large frame instead of a welcome", async () => {
  const listener = Deno.listen({ hostname: LOCALHOST, port: 0 });
  let a: TestNode | undefined;
  let conn: Deno.TcpConn | undefined;
  try {
    a = await startNode("a", {
      handshakeTimeoutMs: 30_000,
      reconnectDelayMs: { min: 1_000, max: 2_000 },
      peers: new Map([["b", loopback(listener.addr.port)]]),
    });
    a.transport.send([ping("a", "b", 1)]);
    conn = await listener.accept();
    assert.notEqual(await readRawFrame(conn), null, "the hello");
    assert.ok(await writeRaw(conn, header(HUGE)));
    assert.equal(await closedByPeer(conn, 2_000), true, "closed without waiting for the body");
    const na = a;
    await waitFor(
      () => logged(na, new RegExp(`body of ${HUGE} bytes exceeds the limit of 4096`)),
      2_000,
      "the dialer's reason",
    );
  } finally {
    closeQuietly(conn);
    await closeAll([a]);
    listener.close();
  }
});

Deno.test("F2b/F2c: a real peer gets through a flood of stalled handshakes, with one warning line", async () => {
  let a: TestNode | undefined;
  let b: TestNode | undefined;
  const flood: Deno.TcpConn[] = [];
  let flooding = true;
  let flooder: Promise<void> | undefined;
  try {
    // Stalled handshakes are held as long as the test runs, unless evicted.
    b = await startNode("b", { handshakeTimeoutMs: 30_000, helloTimeoutMs: 30_000 });
    a = await startNode("a");
    const [na, nb] = [a, b];
    const stall = async () => {
      const conn = await rawConnect(nb.port);
      flood.push(conn);
      await writeRaw(conn, header(100)); // a hello that never comes
      if (flood.length > 2_000) closeQuietly(flood.shift());
    };
    for (let i = 0; i < 2 * HANDSHAKES_PENDING_MAX; i++) await stall();
    // And the flood goes on while the real peer connects.
    flooder = (async () => {
      while (flooding) await stall().catch(() => {});
    })();
    connectAll([na, nb]);
    const started = performance.now();
    let seq = 0;
    await waitFor(
      () => {
        na.transport.send([ping("a", "b", seq++)]); // as Raft's heartbeats would
        return nb.received.length > 0;
      },
      10_000,
      "the real peer's message through the flood",
    );
    const tookMs = performance.now() - started;
    assert.ok(tookMs < 10_000, `took ${tookMs} ms`);
    const evictions = nb.transport.stats().connectionsRefused;
    assert.ok(evictions >= HANDSHAKES_PENDING_MAX, `only ${evictions} evictions`);
    // F2c: one line (the first) for all of them within the interval, not one per connection.
    const lines = warnings(nb, /Closed a pending peer handshake|too many handshakes/);
    assert.equal(lines.length, 1, JSON.stringify(lines));
  } finally {
    flooding = false;
    await flooder;
    flood.forEach(closeQuietly);
    await closeAll([a, b]);
  }
});

Deno.test("F2c: ThrottledLog prints one line per kind and interval, with the count left out", () => {
  const lines: string[] = [];
  let now = 1_000;
  const log = new ThrottledLog((level, message) => lines.push(`${level} ${message}`), () => now);
  log.report("stalled", "warn", "first");
  for (let i = 0; i < 5; i++) log.report("stalled", "warn", `again ${i}`);
  log.report("oversized", "warn", "another kind");
  now += THROTTLED_LOG_INTERVAL_MS - 1;
  log.report("stalled", "warn", "still inside the interval");
  assert.deepEqual(lines, ["warn first", "warn another kind"]);
  now += 1;
  log.report("stalled", "warn", "next");
  log.report("stalled", "warn", "left out");
  now += 2 * THROTTLED_LOG_INTERVAL_MS;
  log.report("stalled", "warn", "later");
  log.report("oversized", "warn", "no count when none was left out");
  assert.deepEqual(lines.slice(2), [
    "warn next (and 6 more of this kind since the last such line 10 s ago)",
    "warn later (and 1 more of this kind since the last such line 20 s ago)",
    "warn no count when none was left out",
  ]);
});

for (const secret of [undefined, SECRET]) {
  const label = secret === undefined ? "without a secret" : "with a secret";

  Deno.test(`F6: hello and welcome carry formed; keepConnected dials with nothing to send (${label})`, async () => {
    let a: TestNode | undefined;
    let b: TestNode | undefined;
    try {
      const states: string[] = [];
      const s = secret === undefined ? {} : { secret };
      let bFormed = false;
      a = await startNode("a", {
        ...s,
        formed: () => false,
        onPeerState: (peer, state) => states.push(`a:${peer}=${stateText(state)}`),
      });
      b = await startNode("b", {
        ...s,
        formed: () => bFormed,
        onPeerState: (peer, state) => states.push(`b:${peer}=${stateText(state)}`),
      });
      connectAll([a, b]);
      a.transport.keepConnected(new Set(["b"]));
      await waitFor(
        () => states.includes("a:b=unformed") && states.includes("b:a=unformed"),
        5_000,
        `both states: ${JSON.stringify(states)}`,
      );
      assert.equal(a.transport.stats().outboundConnected, 1);
      assert.deepEqual(b.received, [], "no message was sent");
      // b bootstraps; a learns it on its next handshake.
      bFormed = true;
      b.transport.keepConnected(new Set(["a"]));
      await waitFor(() => states.includes("a:b=formed"), 5_000, JSON.stringify(states));
    } finally {
      await closeAll([a, b]);
    }
  });

  Deno.test(`F6: a refusal reports the refusing peer formed (${label})`, async () => {
    let a: TestNode | undefined;
    let b: TestNode | undefined;
    try {
      const states: string[] = [];
      const s = secret === undefined ? {} : { secret };
      // a refuses b; a's own formed() is not even asked for a refusal.
      a = await startNode("a", { ...s, formed: () => false, verifyPeer: () => "recorded x" });
      b = await startNode("b", {
        ...s,
        onPeerState: (peer, state) => states.push(`b:${peer}=${stateText(state)}`),
      });
      connectAll([a, b]);
      b.transport.keepConnected(new Set(["a"]));
      await waitFor(() => states.includes("b:a=formed"), 5_000, JSON.stringify(states));
      assert.ok(!states.includes("b:a=unformed"), JSON.stringify(states));
    } finally {
      await closeAll([a, b]);
    }
  });
}

Deno.test("F6: a dial that fails is reported unreachable, and redialed while kept connected", async () => {
  let a: TestNode | undefined;
  try {
    const states: string[] = [];
    a = await startNode("a", {
      onPeerState: (peer, state) => states.push(`${peer}=${stateText(state)}`),
      peers: new Map([["x", loopback(freePort())]]),
    });
    a.transport.keepConnected(new Set(["x"]));
    await waitFor(
      () => states.filter((s) => s === "x=unreachable").length >= 2,
      5_000,
      "redials",
    );
    assert.ok(states.every((s) => s === "x=unreachable"), JSON.stringify(states));
    a.transport.keepConnected(new Set());
  } finally {
    await closeAll([a]);
  }
});
