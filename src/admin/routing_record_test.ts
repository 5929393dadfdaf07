import assert from "node:assert/strict";
import { ConfigError, parseConfig } from "../config/mod.ts";
import { checkRouting, ROUTING_RECORD_FILE, RoutingChangeError } from "./_routing_record.ts";

function config(epoch: number, clusters: [string, number][], scheme = "carp64") {
  let port = 7100;
  const text =
    `[admin]\nhttp = "127.0.0.1:7000"\n[routing]\nepoch = ${epoch}\nscheme = "${scheme}"\n` +
    clusters.map(([id, w]) =>
      `[[clusters]]\nid = "${id}"\nload_factor = ${w}\n[[clusters.nodes]]\nid = "${id}1"\n` +
      `raft = "127.0.0.1:${port++}"\nhttp = "127.0.0.1:${port++}"\ndata = "d${id}"\n`
    ).join("");
  return parseConfig(text, { baseDir: "/srv" });
}

Deno.test("routing record: the first start records; the same routing starts again", async () => {
  const dir = await Deno.makeTempDir();
  try {
    assert.deepEqual(await checkRouting(dir, config(1, [["a", 1], ["b", 1]]), false), []);
    const record = JSON.parse(await Deno.readTextFile(`${dir}/${ROUTING_RECORD_FILE}`));
    assert.deepEqual(record, {
      epoch: 1,
      scheme: "carp64",
      clusters: [{ id: "a", loadFactor: 1 }, { id: "b", loadFactor: 1 }],
    });
    assert.deepEqual(await checkRouting(dir, config(1, [["a", 1], ["b", 1]]), false), []);
    // A new epoch alone is fine and recorded.
    assert.deepEqual(await checkRouting(dir, config(2, [["a", 1], ["b", 1]]), false), []);
    assert.equal(JSON.parse(await Deno.readTextFile(`${dir}/${ROUTING_RECORD_FILE}`)).epoch, 2);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("routing record: a changed routing is refused, naming each change, unless accepted with a new epoch", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await checkRouting(dir, config(3, [["a", 1], ["b", 1], ["c", 1]]), false);
    const changed = config(3, [["a", 1], ["b", 2], ["d", 1]]);
    await assert.rejects(checkRouting(dir, changed, true), (e: unknown) => {
      assert.ok(e instanceof RoutingChangeError && e instanceof ConfigError);
      assert.match(
        e.message,
        /changes the routing \(cluster b load factor 1 → 2; cluster c removed; cluster d added\) but keeps \[routing\] epoch 3.*epoch = 4/,
      );
      return true;
    });
    const bumped = config(4, [["a", 1], ["b", 2], ["d", 1]]);
    await assert.rejects(
      checkRouting(dir, bumped, false),
      /would not move keys between clusters.*koi admin reshard.*--accept-routing-change/,
    );
    await assert.rejects(
      checkRouting(dir, config(4, [["a", 1]], "carp"), false),
      /scheme carp64 → carp/,
    );
    assert.deepEqual(await checkRouting(dir, bumped, true), [
      "cluster b load factor 1 → 2",
      "cluster c removed",
      "cluster d added",
    ]);
    assert.equal(JSON.parse(await Deno.readTextFile(`${dir}/${ROUTING_RECORD_FILE}`)).epoch, 4);
    // Going back is refused even when asked for.
    await assert.rejects(
      checkRouting(dir, config(3, [["a", 1], ["b", 2], ["d", 1]]), true),
      /epoch went back from 4 to 3/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("routing record: a damaged record is an error, not a silent reset", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/${ROUTING_RECORD_FILE}`, "{not json");
    await assert.rejects(checkRouting(dir, config(1, [["a", 1]]), true), /routing.json is damaged/);
    assert.equal(await Deno.readTextFile(`${dir}/${ROUTING_RECORD_FILE}`), "{not json");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("routing record: duplicate ids, extra fields or bad numbers are damage too", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const bad = [
      {
        epoch: 1,
        scheme: "carp64",
        clusters: [{ id: "a", loadFactor: 1 }, { id: "a", loadFactor: 1 }],
      },
      { epoch: 1, scheme: "carp64", clusters: [{ id: "a", loadFactor: 1 }], extra: true },
      { epoch: 1, scheme: "carp64", clusters: [{ id: "a", loadFactor: -1 }] },
      { epoch: 0, scheme: "carp64", clusters: [{ id: "a", loadFactor: 1 }] },
      { epoch: 1, scheme: "carp64", clusters: [] },
    ];
    for (const record of bad) {
      await Deno.writeTextFile(`${dir}/${ROUTING_RECORD_FILE}`, JSON.stringify(record));
      await assert.rejects(
        checkRouting(dir, config(1, [["a", 1]]), true),
        /is damaged/,
        JSON.stringify(record),
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
