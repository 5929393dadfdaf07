/** `koi client …` as a process, against a fake admin and fake nodes. */
import assert from "node:assert/strict";
import { CarpTable } from "../../src/carp/mod.ts";
import { FakeDeployment, freePorts, keyOwnedBy } from "../../src/client/_fake_test_util.ts";
import { koi, THREE } from "./_cli_test_util.ts";

Deno.test("koi client: --help exits 0 for the mode and every command", async () => {
  const runs = await Promise.all([
    koi([]),
    koi(["--help"]),
    ...["get", "put", "del", "list", "where", "status"].map((c) => koi([c, "--help"])),
  ]);
  for (const [i, run] of runs.entries()) {
    assert.equal(run.code, 0, `${i}: ${run.err}`);
    assert.equal(run.err, "");
  }
  assert.match(runs[0].out, /^Usage: koi client <command>/);
  assert.match(runs[0].out, /Exit codes: 0 done, 1 failure .* 3 key not found/s);
  assert.match(runs[2].out, /^Usage: koi client get <key>/);
  assert.match(runs[3].out, /--if-rev <rev>/);
  assert.match(runs[7].out, /^Usage: koi client status/);
});

Deno.test("koi client: usage errors exit 2 naming the problem, with the command's usage", async () => {
  const cases: [string[], RegExp, RegExp][] = [
    [["get", "--bogus"], /Unknown option '--bogus'/, /Usage: koi client get/],
    [["get"], /Missing argument: get <key>/, /Usage: koi client get/],
    [["get", "a", "b"], /Unexpected argument: b/, /Usage: koi client get/],
    [["put", "k", "v", "x"], /Unexpected argument: x/, /Usage: koi client put/],
    [["put", "k", "v", "--if-rev", "1", "--if-absent"], /--if-rev or --if-absent/, /put/],
    [["put", "k", "v", "--if-rev", "0"], /Invalid --if-rev: 0/, /Usage: koi client put/],
    [["list", "--limit", "1001"], /Invalid --limit: 1001/, /Usage: koi client list/],
    [["list", "extra"], /Unexpected argument: extra/, /Usage: koi client list/],
    [["where", "k".repeat(1025)], /Invalid <key>: must be 1 to 1024 bytes/, /where/],
    [["get", "--b64", "a+b"], /not base64url/, /Usage: koi client get/],
    [["del", "k", "--timeout", "soon"], /Invalid --timeout: soon/, /Usage: koi client del/],
    [["status", "now"], /Unexpected argument: now/, /Usage: koi client status/],
    [["frob"], /Unknown client command: frob/, /Usage: koi client <command>/],
  ];
  const runs = await Promise.all(cases.map(([args]) => koi(args)));
  for (const [i, run] of runs.entries()) {
    const [args, message, usage] = cases[i];
    assert.equal(run.code, 2, `${args.join(" ")}: ${run.err}`);
    assert.match(run.err, message, args.join(" "));
    assert.match(run.err, usage, args.join(" "));
    assert.equal(run.out, "");
  }
});

Deno.test("koi client: put, get, del and where against a fake deployment", async () => {
  const d = FakeDeployment.start(THREE);
  try {
    const admin = ["--admin", d.adminUrl];
    const table = new CarpTable({
      scheme: "carp64",
      epoch: 1,
      members: THREE.clusters.map((c) => ({ id: c.id, loadFactor: 1 })),
    });
    const key = keyOwnedBy(table, "b", "user:");
    const put = await koi(["put", key, "hello wörld", ...admin]);
    assert.equal(put.code, 0, put.err);
    assert.match(put.out, /^rev \d+\n$/);
    assert.equal(d.cluster("b").text(key), "hello wörld");

    const get = await koi(["get", key, ...admin]);
    assert.equal(get.code, 0, get.err);
    assert.equal(get.out, "hello wörld", "raw value, no newline");

    const json = await koi(["get", key, "--json", "--stale", ...admin]);
    assert.equal(json.code, 0, json.err);
    const parsed = JSON.parse(json.out);
    assert.equal(parsed.value, "hello wörld");
    assert.equal(parsed.key, key);
    assert.equal(parsed.rev, Number(put.out.split(" ")[1]));
    assert.equal(d.requests.at(-1)!.query.get("consistency"), "stale");

    const missing = await koi(["get", "nope", ...admin]);
    assert.equal(missing.code, 3);
    assert.equal(missing.out, "");
    assert.match(missing.err, /^koi: key "nope" not found\n$/);

    const exists = await koi(["put", key, "again", "--if-absent", ...admin]);
    assert.equal(exists.code, 4);
    assert.match(exists.err, /condition not met: the key has rev \d+/);

    const stdin = await koi(["put", "--b64", "gII", "--json", ...admin], {
      stdin: new Uint8Array([0, 1, 2, 255]),
    });
    assert.equal(stdin.code, 0, stdin.err);
    const { rev } = JSON.parse(stdin.out);
    const raw = await koi(["get", "--b64", "gII", ...admin]);
    assert.deepEqual(raw.stdout, new Uint8Array([0, 1, 2, 255]));
    const cas = await koi(["put", "--b64", "gII", "x", "--if-rev", String(rev), ...admin]);
    assert.equal(cas.code, 0, cas.err);

    const del = await koi(["del", key, ...admin]);
    assert.equal(del.code, 0, del.err);
    assert.match(del.out, /^deleted, rev \d+\n$/);
    const again = await koi(["del", key, "--json", ...admin]);
    assert.equal(JSON.parse(again.out).deleted, false);
    const stale = await koi(["del", key, "--if-rev", "1", ...admin]);
    assert.equal(stale.code, 4);
    assert.match(stale.err, /the key does not exist/);

    const where = await koi(["where", key, ...admin]);
    assert.equal(where.code, 0, where.err);
    assert.match(where.out, new RegExp(`^key +"${key}"\ncluster +b \\(routing epoch 1`));
    assert.match(where.out, /leader +b1 127\.0\.0\.1:\d+/);
    const whereJson = JSON.parse((await koi(["where", key, "--json", ...admin])).out);
    assert.equal(whereJson.cluster, "b");
    assert.deepEqual(whereJson.nodes.map((n: { id: string }) => n.id), ["b1", "b2", "b3"]);
    assert.equal(whereJson.leader, "b1");
  } finally {
    await d.close();
  }
});

Deno.test("koi client: list pages, --all and --json merge every cluster", async () => {
  const d = FakeDeployment.start(THREE);
  try {
    for (let i = 0; i < 7; i++) d.cluster(["a", "b", "c"][i % 3]).set(`k${i}`, "v");
    d.cluster("a").set("other", "v");
    const env = { KOI_ADMIN: d.adminUrl };
    const page = await koi(["list", "--prefix", "k", "--limit", "3"], { env });
    assert.equal(page.code, 0, page.err);
    assert.equal(page.out, "k0\nk1\nk2\n");
    assert.match(page.err, /more keys follow; go on with --after=k2 /);
    const rest = await koi(["list", "--prefix", "k", "--after", "k2", "--limit", "3", "--json"], {
      env,
    });
    const json = JSON.parse(rest.out);
    assert.deepEqual(json.items.map((i: { key: string }) => i.key), ["k3", "k4", "k5"]);
    assert.equal(json.more, true);
    assert.equal(json.next_b64, "azU");
    const all = await koi(["list", "--all", "--limit", "2"], { env });
    assert.equal(all.code, 0, all.err);
    assert.equal(all.out, "k0\nk1\nk2\nk3\nk4\nk5\nk6\nother\n");
    assert.equal(all.err, "");
  } finally {
    await d.close();
  }
});

Deno.test("koi client status: one table of every node; --json is the admin's JSON", async () => {
  const d = FakeDeployment.start(THREE);
  try {
    await d.node("c3").stop();
    const run = await koi(["status", "--admin", d.adminUrl.replace("http://", "")]);
    assert.equal(run.code, 0, run.err);
    const lines = run.out.trimEnd().split("\n");
    assert.match(lines[0], /^routing epoch 1, scheme carp64, healthy$/);
    assert.match(
      lines[2],
      /^\| CLUSTER \| NODE \| HTTP +\| ROLE +\| LEADER \| TERM \| COMMIT \| APPLIED \| KEYS \| PID +\| RESTARTS \| ERROR +\|$/,
    );
    const rows = lines.filter((l) => /^\| [abc] /.test(l));
    assert.equal(rows.length, 9);
    assert.match(rows[0], /^\| a +\| a1 +\| 127\.0\.0\.1:\d+ \| leader +\| a1 /);
    assert.match(rows[1], /\| follower +\| a1 /);
    assert.match(rows[8], /^\| c +\| c3 .*\| unreachable \| - .*\| connection refused \|$/);
    const json = await koi(["status", "--json", "--admin", d.adminUrl]);
    assert.deepEqual(JSON.parse(json.out), d.clustersJson());
  } finally {
    await d.close();
  }
});

Deno.test("koi client: an unreachable admin is a failure (exit 1) that says so", async () => {
  const [port] = freePorts(1);
  const runs = await Promise.all([
    koi(["get", "k", "--admin", `127.0.0.1:${port}`, "--timeout", "300"]),
    koi(["status", "--admin", `127.0.0.1:${port}`]),
  ]);
  for (const run of runs) {
    assert.equal(run.code, 1, run.err);
    assert.equal(run.out, "");
  }
  assert.match(
    runs[0].err,
    /^koi: No routing table from the admin .* within 300 ms; .*connection refused/,
  );
  assert.match(
    runs[1].err,
    /^koi: Cannot reach the admin http:\/\/127\.0\.0\.1:\d+: connection refused/,
  );
});

Deno.test("koi client: a cluster without a leader: exit 1, outcome unknown said", async () => {
  const d = FakeDeployment.start(THREE);
  try {
    d.nodeHook = () =>
      new Response(JSON.stringify({ error: { code: "no_leader", message: "No leader" } }), {
        status: 503,
        headers: { "retry-after": "1" },
      });
    const run = await koi(["put", "k", "v", "--admin", d.adminUrl, "--timeout", "300"]);
    assert.equal(run.code, 1);
    assert.match(run.err, /^koi: put "k": cluster [abc] unavailable for 300 ms/);
    assert.match(
      run.err,
      /answered 503 no_leader: No leader; the write may or may not have been applied/,
    );
  } finally {
    await d.close();
  }
});
