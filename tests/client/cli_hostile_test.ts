/**
 * `koi client …` as a process where things go wrong around it: servers that send too much
 * or malformed answers or control characters, a stdout closed by its reader, a stdin that
 * is closed or a terminal, and listing hints that must work as printed.
 */
import assert from "node:assert/strict";
import { encodeBase64Url } from "../../src/client/_bytes.ts";
import { error, FakeDeployment, json } from "../../src/client/_fake_test_util.ts";
import { decode, koi, koiCommand, spawnKoi, THREE } from "./_cli_test_util.ts";

const ONE = { clusters: [{ id: "a", nodes: ["a1"] }] };
const LINUX = Deno.build.os === "linux";

/** A body of `total` bytes of "a", made as it is read. */
function streamed(total: number): ReadableStream<Uint8Array> {
  let sent = 0;
  return new ReadableStream({
    pull(controller) {
      if (sent >= total) return controller.close();
      const n = Math.min(64 * 1024, total - sent);
      sent += n;
      controller.enqueue(new Uint8Array(n).fill(0x61));
    },
  }, { highWaterMark: 0 });
}

Deno.test("koi client: a node or admin sending too much fails at once, exit 1", async () => {
  const d = FakeDeployment.start(ONE);
  try {
    d.nodeHook = () => new Response(streamed(32 << 20), { headers: { etag: '"1"' } });
    const get = await koi(["get", "k", "--admin", d.adminUrl]);
    assert.equal(get.code, 1, get.err);
    assert.equal(get.out, "");
    assert.match(
      get.err,
      /^koi: get "k": node a1 \(.*\) answered 200 with a body over 1114112 bytes/,
    );
    d.adminHook = () => new Response(streamed(48 << 20));
    const status = await koi(["status", "--admin", d.adminUrl]);
    assert.equal(status.code, 1, status.err);
    assert.match(status.err, /^koi: Cannot fetch the status: the admin .* over 16777216 bytes/);
  } finally {
    await d.close();
  }
});

Deno.test("koi client status: a malformed /v1/clusters is a failure naming the field", async () => {
  const d = FakeDeployment.start(ONE);
  try {
    const answer = d.clustersJson() as { clusters: { nodes: { status: unknown }[] }[] };
    answer.clusters[0].nodes[0].status = { node: "a1" };
    d.adminHook = (_, path) => (path === "/v1/clusters" ? json(200, answer) : undefined);
    const run = await koi(["status", "--admin", d.adminUrl]);
    assert.equal(run.code, 1, run.err);
    assert.equal(run.out, "");
    assert.match(
      run.err,
      /^koi: the admin .* answered an invalid \/v1\/clusters: clusters\[0\]\.nodes\[0\]\.status\.cluster undefined, expected a string\n$/,
    );
  } finally {
    await d.close();
  }
});

Deno.test("koi client: control characters from servers are escaped on the terminal", async () => {
  const d = FakeDeployment.start(ONE);
  try {
    const answer = d.clustersJson() as {
      scheme: string;
      clusters: { nodes: Record<string, unknown>[] }[];
    };
    const node = answer.clusters[0].nodes[0];
    node.error = "boom\n\x1b]0;owned\x07";
    node.http = "\u202eevil";
    (node.status as Record<string, unknown>).role = "\x1b[31mleader";
    answer.scheme = "carp64\r";
    d.adminHook = (_, path) => (path === "/v1/clusters" ? json(200, answer) : undefined);
    const status = await koi(["status", "--admin", d.adminUrl]);
    assert.equal(status.code, 0, status.err);
    for (const raw of ["\x1b", "\x07", "\r", "\u202e"]) assert.ok(!status.out.includes(raw), raw);
    const lines = status.out.trimEnd().split("\n");
    assert.equal(lines.length, 6, status.out);
    assert.match(lines[0], /scheme carp64\\x0d, /);
    assert.match(lines[4], /\| \\u\{202e\}evil \| \\x1b\[31mleader \|/);
    assert.match(lines[4], /\| boom\\x0a\\x1b\]0;owned\\x07 \|$/);

    d.adminHook = undefined;
    d.nodeHook = () => error(500, "internal", "\x1b[2Jwiped\nkoi: all is well");
    const get = await koi(["get", "k", "--admin", d.adminUrl]);
    assert.equal(get.code, 1);
    assert.equal(
      get.err,
      'koi: get "k": node a1 (' + d.node("a1").http + ") answered 500 internal: " +
        "\\x1b[2Jwiped\\x0akoi: all is well\n",
    );
  } finally {
    await d.close();
  }
});

/** Runs `koi client <args>`, reads `bytes` of its stdout, then closes it as `head` does. */
async function readThenClose(args: string[], bytes: number) {
  const child = spawnKoi(args);
  const stderr = new Response(child.stderr).text();
  const reader = child.stdout.getReader();
  let read = 0;
  while (read < bytes) {
    const { done, value } = await reader.read();
    if (done) break;
    read += value.length;
  }
  await reader.cancel();
  return { code: (await child.status).code, err: await stderr, read };
}

Deno.test("koi client: a stdout closed by its reader ends get and list quietly, exit 0", async () => {
  const d = FakeDeployment.start(THREE);
  try {
    const owner = d.nodeTable.owner("big");
    d.cluster(owner).set("big", new Uint8Array(1 << 20).fill(0x62));
    const get = await readThenClose(["get", "big", "--admin", d.adminUrl], 10);
    assert.equal(get.err, "");
    assert.equal(get.code, 0);

    // 300 keys of 1000 bytes, 30 pages: far more than a pipe holds.
    for (let i = 0; i < 300; i++) {
      d.cluster(["a", "b", "c"][i % 3]).set(String(i).padStart(4, "0") + "x".repeat(996));
    }
    const before = d.requests.length;
    const list = await readThenClose(["list", "--all", "--limit", "10", "--admin", d.adminUrl], 10);
    assert.equal(list.err, "");
    assert.equal(list.code, 0);
    const pages = (d.requests.length - before) / 3;
    assert.ok(pages < 30, `the listing stopped once nobody read it (${pages} of 30 pages)`);
  } finally {
    await d.close();
  }
});

Deno.test({
  name: "koi client put: a closed or unreadable stdin is a usage error; an empty one stores ''",
  ignore: !LINUX,
  fn: async () => {
    const d = FakeDeployment.start(ONE);
    try {
      const admin = ["--admin", d.adminUrl];
      const closed = await koi(["put", "k", ...admin], { redirect: "<&-" });
      assert.equal(closed.code, 2, closed.err);
      assert.match(closed.err, /^koi: Missing <value>: stdin is closed; give it as an argument/);
      assert.match(closed.err, /Usage: koi client put/);
      const unreadable = await koi(["put", "k", ...admin], { redirect: "0>/dev/null" });
      assert.equal(unreadable.code, 2, unreadable.err);
      assert.match(unreadable.err, /^koi: Missing <value>: stdin cannot be read \(/);
      assert.equal(d.cluster("a").text("k"), undefined, "nothing was written");
      assert.equal(d.requests.length, 0);

      const devNull = await koi(["put", "k", ...admin]); // stdin is /dev/null
      assert.equal(devNull.code, 0, devNull.err);
      assert.equal(d.cluster("a").text("k"), "");
      const empty = await koi(["put", "e", ...admin], { stdin: "" });
      assert.equal(empty.code, 0, empty.err);
      assert.equal(d.cluster("a").text("e"), "");
    } finally {
      await d.close();
    }
  },
});

const SCRIPT = LINUX && (() => {
  try {
    return Deno.statSync("/usr/bin/script").isFile;
  } catch {
    return false;
  }
})();

Deno.test({
  name: "koi client put: a stdin that is a terminal is a usage error",
  ignore: !SCRIPT,
  fn: async () => {
    const d = FakeDeployment.start(ONE);
    try {
      const quote = (word: string) => `'${word.replaceAll("'", `'\\''`)}'`;
      const line = koiCommand(["put", "k", "--admin", d.adminUrl]).map(quote).join(" ");
      // script(1) runs the command on a pseudo-terminal; the ^D would end a read of it.
      const child = new Deno.Command("/usr/bin/script", {
        args: ["-qec", line, "/dev/null"],
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
        env: { NO_COLOR: "1" },
      }).spawn();
      const writer = child.stdin.getWriter();
      await writer.write(new Uint8Array([4]));
      await writer.close();
      const o = await child.output();
      assert.equal(o.code, 2, decode(o.stdout) + decode(o.stderr));
      assert.match(decode(o.stdout), /koi: Missing <value>: stdin is a terminal/);
      assert.equal(d.cluster("a").text("k"), undefined);
    } finally {
      await d.close();
    }
  },
});

/** Lists page by page, following the hint on stderr each time; returns the lines. */
async function followHints(args: string[], env: Record<string, string>): Promise<string[]> {
  const lines: string[] = [];
  let extra: string[] = [];
  for (let page = 0; page < 10; page++) {
    const run = await koi([...args, ...extra], { env });
    assert.equal(run.code, 0, `${[...args, ...extra].join(" ")}: ${run.err}`);
    lines.push(...run.out.split("\n").filter((l) => l !== ""));
    const hint = /go on with (.+) \(or --all\)/.exec(run.err);
    if (hint === null) return lines;
    assert.doesNotMatch(hint[1], /['"]/, "no quoting needed for these keys");
    extra = hint[1].split(" ");
  }
  throw new Error("more pages than keys");
}

Deno.test("koi client list: the hint to go on can be followed as printed", async () => {
  const d = FakeDeployment.start(THREE);
  try {
    const env = { KOI_ADMIN: d.adminUrl };
    for (const key of ["k\x01a", "k\x01b", "k\x01c", "-a", "-b", "-c", "other"]) {
      d.cluster("a").set(key);
    }
    const b64 = (text: string) => `base64url:${encodeBase64Url(new TextEncoder().encode(text))}`;
    // A text prefix, keys that are not printable.
    assert.deepEqual(
      await followHints(["list", "--prefix", "k", "--limit", "1"], env),
      [b64("k\x01a"), b64("k\x01b"), b64("k\x01c")],
    );
    // Keys that start with "-".
    assert.deepEqual(await followHints(["list", "--prefix=-", "--limit", "2"], env), [
      "-a",
      "-b",
      "-c",
    ]);
    // Everything in base64url.
    const prefix = encodeBase64Url(new TextEncoder().encode("k"));
    assert.deepEqual(
      await followHints(["list", "--b64", "--prefix", prefix, "--limit", "2"], env),
      [b64("k\x01a"), b64("k\x01b"), b64("k\x01c")].map((k) => k.slice("base64url:".length)),
    );
    const both = await koi(["list", "--after", "a", "--after-b64", "YQ"], { env });
    assert.equal(both.code, 2);
    assert.match(both.err, /Give --after or --after-b64, not both/);
  } finally {
    await d.close();
  }
});
