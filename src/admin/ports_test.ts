import assert from "node:assert/strict";
import { parseConfig } from "../config/mod.ts";
import {
  AddressesTakenError,
  adminAddresses,
  checkAddressesFree,
  configAddresses,
} from "./_ports.ts";

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

Deno.test("ports: every taken address is named by its field; free ones pass", () => {
  const [p1, p2, p3, p4, p5] = [freePort(), freePort(), freePort(), freePort(), freePort()];
  const config = parseConfig(
    `[admin]\nhttp = "127.0.0.1:${p1}"\n[[clusters]]\nid = "a"\n` +
      `[[clusters.nodes]]\nid = "a1"\nraft = "127.0.0.1:${p2}"\nhttp = "127.0.0.1:${p3}"\ndata = "d1"\n` +
      `[[clusters.nodes]]\nid = "a2"\nraft = "127.0.0.1:${p4}"\nhttp = "127.0.0.1:${p5}"\ndata = "d2"\n`,
    { baseDir: "/tmp" },
  );
  const addresses = configAddresses(config);
  assert.deepEqual(addresses.map((a) => a.field), [
    "admin.http",
    "clusters[0].nodes[0].raft",
    "clusters[0].nodes[0].http",
    "clusters[0].nodes[1].raft",
    "clusters[0].nodes[1].http",
  ]);
  checkAddressesFree(addresses);
  const held = [p1, p4].map((port) => Deno.listen({ hostname: "127.0.0.1", port }));
  try {
    assert.throws(() => checkAddressesFree(addresses), (error: unknown) => {
      assert.ok(error instanceof AddressesTakenError);
      assert.deepEqual(error.taken.map((t) => t.field), [
        "admin.http",
        "clusters[0].nodes[1].raft",
      ]);
      assert.match(
        error.message,
        new RegExp(
          `2 addresses of the config are already in use: admin.http \\(127.0.0.1:${p1}\\)`,
        ),
      );
      return true;
    });
  } finally {
    for (const l of held) l.close();
  }
});

Deno.test("ports: kv_connect.listen is the admin's, checked with its other address", () => {
  const [p1, p2, p3, p4] = [freePort(), freePort(), freePort(), freePort()];
  const config = parseConfig(
    `[admin]\nhttp = "127.0.0.1:${p1}"\n[kv_connect]\nlisten = "127.0.0.1:${p2}"\n` +
      `[[clusters]]\nid = "a"\n` +
      `[[clusters.nodes]]\nid = "a1"\nraft = "127.0.0.1:${p3}"\nhttp = "127.0.0.1:${p4}"\ndata = "d1"\n`,
    { baseDir: "/tmp" },
  );
  assert.deepEqual(configAddresses(config).map((a) => a.field), [
    "admin.http",
    "kv_connect.listen",
    "clusters[0].nodes[0].raft",
    "clusters[0].nodes[0].http",
  ]);
  // With --no-spawn the nodes hold their own addresses: only the admin's are checked.
  assert.deepEqual(adminAddresses(config).map((a) => a.field), ["admin.http", "kv_connect.listen"]);
  const held = Deno.listen({ hostname: "127.0.0.1", port: p2 });
  try {
    assert.throws(
      () => checkAddressesFree(adminAddresses(config)),
      new RegExp(
        `An address of the config is already in use: kv_connect.listen \\(127.0.0.1:${p2}\\)`,
      ),
    );
  } finally {
    held.close();
  }
});
