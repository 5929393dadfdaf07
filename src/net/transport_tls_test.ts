/**
 * The peer transport over mutual TLS: peers with certificates of the deployment's CA talk,
 * a dialer with another CA's certificate or none at all is refused in the TLS handshake (so
 * nothing it sends reaches Raft, even without a cluster secret), a plain TCP dialer is
 * refused, and a dialer refuses a listener whose certificate the CA did not sign.
 */
import assert from "node:assert/strict";
import { connect as tlsConnect, type TLSSocket } from "node:tls";
import type { TlsMaterial } from "../config/mod.ts";
import { makeTestPki, type TestPki, tlsTest } from "../config/_tls_test_util.ts";
import {
  bigAppend,
  closeAll,
  closedByPeer,
  closeQuietly,
  connectAll,
  helloFrame,
  LOCALHOST,
  loopback,
  ping,
  rawConnect,
  startNode,
  type TestNode,
  waitFor,
  writeRaw,
} from "./_test_util.ts";
import { encodeFrame } from "./_frame.ts";
import { encodeMessage } from "./_codec.ts";

const SECRET = "a cluster secret of some length";

function material(pki: TestPki, name: string): TlsMaterial {
  const leaf = pki.leaves.get(name)!;
  return { ca: pki.ca, cert: leaf.cert, key: leaf.key };
}

/** Dials `port` with `node:tls`; resolves with the socket's fate after writing `bytes`. */
function rogueDial(
  port: number,
  options: { ca: string; cert?: string; key?: string },
  bytes: Uint8Array,
): Promise<{ handshake: boolean; closed: boolean; error: string }> {
  return new Promise((resolve) => {
    let handshake = false;
    let error = "";
    const socket: TLSSocket = tlsConnect({ host: LOCALHOST, port, ...options });
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ handshake, closed: false, error });
    }, 5_000);
    socket.on("secureConnect", () => {
      handshake = true;
      socket.write(bytes);
    });
    socket.on("data", () => {}); // a challenge, if it got that far (it must not)
    socket.on("error", (e: Error) => error ||= e.message);
    socket.on("close", () => {
      clearTimeout(timer);
      resolve({ handshake, closed: true, error });
    });
  });
}

function refusedWarnings(node: TestNode): string[] {
  return node.logs.filter((l) => l.level === "warn" && /TLS handshake failed/.test(l.message))
    .map((l) => l.message);
}

await tlsTest(
  "tls transport: peers of one CA exchange messages, large ones too, in order",
  async () => {
    const pki = await makeTestPki(["a1", "a2"]);
    let nodes: TestNode[] = [];
    try {
      nodes = [
        await startNode("a1", { secret: SECRET, tls: material(pki, "a1") }),
        await startNode("a2", { secret: SECRET, tls: material(pki, "a2") }),
      ];
      connectAll(nodes);
      const [a1, a2] = nodes;
      const big = bigAppend("a1", "a2", 7, 3 * 1024 * 1024); // past the read buffer's pause mark
      a1.transport.send([ping("a1", "a2", 1), big, ping("a1", "a2", 2)]);
      a2.transport.send([ping("a2", "a1", 9)]);
      await waitFor(() => a2.received.length === 3 && a1.received.length === 1, 10_000, "delivery");
      assert.deepEqual(a2.received.map((m) => m.type), ["heartbeatResp", "app", "heartbeatResp"]);
      const got = a2.received[1];
      assert.ok(got.type === "app");
      assert.deepEqual(got.entries[0].data, (big as typeof got).entries[0].data);
      assert.equal(a1.transport.stats().connectionsRefused, 0);
    } finally {
      await closeAll(nodes);
      await Deno.remove(pki.dir, { recursive: true });
    }
  },
);

await tlsTest(
  "tls transport: a dialer with another CA's certificate, or none, is refused",
  async () => {
    const pki = await makeTestPki(["a1"]);
    let node: TestNode | undefined;
    try {
      // No secret: the TLS handshake alone must keep the rogue out.
      node = await startNode("a1", { tls: material(pki, "a1") });
      node.transport.setPeers(new Map([["a2", loopback(1)]]));
      const vote = encodeFrame(
        encodeMessage({
          type: "vote",
          from: "a2",
          to: "a1",
          term: 99,
          index: 100,
          logTerm: 99,
          transfer: false,
        }),
      );
      const hello = helloFrame({ cluster: "c", from: "a2", to: "a1" });
      const bytes = new Uint8Array([...hello, ...vote]);
      const rogue = await rogueDial(
        node.port,
        { ca: pki.ca, cert: pki.rogue.cert, key: pki.rogue.key },
        bytes,
      );
      assert.ok(rogue.closed, `the rogue's connection was closed (${rogue.error})`);
      const bare = await rogueDial(node.port, { ca: pki.ca }, bytes);
      assert.ok(bare.closed, `a dialer without a certificate was closed (${bare.error})`);
      const n = node;
      await waitFor(() => n.transport.stats().connectionsRefused >= 2, 5_000, "two refusals");
      assert.equal(node.received.length, 0, "nothing reached onMessage");
      assert.equal(node.transport.stats().inboundConnected, 0);
      const warned = refusedWarnings(node);
      assert.equal(warned.length, 1, "one warning per kind and interval");
      assert.match(warned[0], /signed by the deployment's CA/);
    } finally {
      await node?.transport.close();
      await Deno.remove(pki.dir, { recursive: true });
    }
  },
);

await tlsTest("tls transport: a plain TCP dialer is refused on the TLS port", async () => {
  const pki = await makeTestPki(["a1"]);
  let node: TestNode | undefined;
  let conn: Deno.TcpConn | undefined;
  try {
    node = await startNode("a1", { tls: material(pki, "a1") });
    conn = await rawConnect(node.port);
    await writeRaw(conn, helloFrame({ cluster: "c", from: "a2", to: "a1" }));
    assert.ok(await closedByPeer(conn), "the plain connection was closed");
    assert.equal(node.received.length, 0);
    const n = node;
    await waitFor(() => n.transport.stats().connectionsRefused >= 1, 5_000, "the refusal");
  } finally {
    closeQuietly(conn);
    await node?.transport.close();
    await Deno.remove(pki.dir, { recursive: true });
  }
});

await tlsTest(
  "tls transport: a dialer refuses a listener whose certificate the CA did not sign",
  async () => {
    const pki = await makeTestPki(["a1"]);
    let nodes: TestNode[] = [];
    try {
      nodes = [
        await startNode("a1", { secret: SECRET, tls: material(pki, "a1") }),
        // a2 trusts our CA (it would accept a1) but presents a certificate of another CA.
        await startNode("a2", {
          secret: SECRET,
          tls: { ca: pki.ca, cert: pki.rogue.cert, key: pki.rogue.key },
        }),
      ];
      connectAll(nodes);
      const [a1, a2] = nodes;
      a1.transport.send([ping("a1", "a2", 1)]);
      await waitFor(
        () => a1.logs.some((l) => /TLS handshake with .* failed/.test(l.message)),
        5_000,
        "a1's refusal of a2's certificate",
      );
      assert.equal(a2.received.length, 0);
      assert.equal(a1.transport.stats().outboundConnected, 0);
    } finally {
      await closeAll(nodes);
      await Deno.remove(pki.dir, { recursive: true });
    }
  },
);
