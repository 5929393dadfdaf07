/**
 * Watch against real `koi node` processes (a 3-node cluster behind a stand-in admin):
 * `client.watch` keeps every change, once and in order, across a `kill -9` of the node its
 * stream was on; a follower serves a watch and ends it when it stops (SIGTERM); garbage is
 * refused with 400; `koi client watch` prints the lines and exits 0 on Ctrl-C.
 */
import assert from "node:assert/strict";
import { ProcessCluster, waitFor } from "./_cluster.ts";
import { connect, type WatchEvent } from "../../mod.ts";
import { spawnKoi } from "../client/_cli_test_util.ts";

Deno.test("watch e2e: resumes across kill -9 without missing or repeating; followers; CLI", async () => {
  const cluster = await ProcessCluster.create(["a1", "a2", "a3"]);
  let leaderHint = "";
  const admin = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (request) =>
      new URL(request.url).pathname === "/v1/carp"
        ? Response.json({
          epoch: 1,
          scheme: "carp64",
          clusters: [{
            id: "a",
            loadFactor: 1,
            leader: leaderHint,
            nodes: [...cluster.nodes.values()].map((n) => ({ id: n.id, http: n.http })),
          }],
        })
        : Response.json({ error: { code: "not_found", message: "no" } }, { status: 404 }),
  );
  const adminUrl = `http://127.0.0.1:${admin.addr.port}`;
  let cli: Deno.ChildProcess | undefined;
  try {
    cluster.startAll();
    leaderHint = await cluster.leader(30_000);
    using koi = await connect(adminUrl, { timeoutMs: 15_000, attemptTimeoutMs: 2_000 });
    const watch = koi.watch("w/");
    const got: WatchEvent[] = [];
    const collecting = (async () => {
      for await (const e of watch) got.push(e);
    })();
    // The stream is open once a write made now shows up.
    const revs: number[] = [];
    await waitFor(
      async () => {
        revs.push((await koi.put("w/probe", "p")).rev);
        await new Promise((r) => setTimeout(r, 100));
        return got.length > 0;
      },
      "the watch to open",
      20_000,
    );
    const base = got[0].rev; // the first change seen: every later write must follow it
    const expected = () => revs.filter((r) => r >= base);
    for (let i = 0; i < 20; i++) revs.push((await koi.put(`w/${i}`, `v${i}`)).rev);
    await koi.put("other", "x"); // outside the prefix
    await waitFor(() => got.length === expected().length, "the first 20 changes", 20_000);
    // Kill the node the stream is on (the leader), write more, and nothing is lost.
    await cluster.stop(leaderHint, true);
    for (let i = 20; i < 40; i++) revs.push((await koi.put(`w/${i}`, `v${i}`)).rev);
    revs.push((await koi.delete("w/0")).rev);
    await waitFor(() => got.length >= expected().length, "every change after the kill", 30_000);
    await new Promise((r) => setTimeout(r, 300)); // a repeat would show up meanwhile
    assert.deepEqual(got.map((e) => e.rev), expected(), "each change exactly once, in order");
    assert.deepEqual(got.at(-1)!.type, "delete");
    assert.equal(new TextDecoder().decode(got.find((e) => e.keyText === "w/39")!.value), "v39");
    await watch.return!();
    await collecting;

    // A follower serves a watch from rev 0 (its whole history) and refuses garbage.
    const followers = [...cluster.nodes.values()].filter((n) => n.child !== undefined);
    const follower = followers.find((n) => n.id !== (koi.where("w/0").leader?.id ?? ""))!;
    const bad = await cluster.fetch(follower.id, "/v1/watch?from_rev=x");
    assert.equal(bad.status, 400);
    assert.equal((await bad.json()).error.code, "bad_request");
    const stream = await fetch(`http://${follower.http}/v1/watch?prefix=w%2F&from_rev=0`);
    assert.equal(stream.status, 200);
    assert.equal(stream.headers.get("content-type"), "text/event-stream");
    const reader = stream.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    while (!text.includes(`id: ${revs.at(-1)}\n`)) {
      const next = await reader.read();
      if (next.done) throw new Error(`the follower's stream ended: ${text}`);
      text += next.value;
    }
    assert.match(text, /^id: 0\nevent: start\n/);
    // Its stopping ends the stream (SIGTERM: the node's clean shutdown).
    const stopped = Date.now();
    cluster.signal(follower.id, "SIGTERM");
    for (;;) {
      const next = await reader.read().catch(() => ({ done: true, value: undefined }));
      if (next.done) break;
    }
    assert.ok(Date.now() - stopped < 10_000, "the stream ended with the node");
    await cluster.stop(follower.id);
    cluster.start(follower.id);
    leaderHint = await cluster.leader(30_000);

    // The command line: one line per change until Ctrl-C.
    cli = spawnKoi(["watch", "cli/"], { env: { KOI_ADMIN: adminUrl } });
    const lines: string[] = [];
    const out = (async () => {
      let rest = "";
      for await (const chunk of cli!.stdout.pipeThrough(new TextDecoderStream())) {
        const parts = (rest + chunk).split("\n");
        rest = parts.pop()!;
        lines.push(...parts);
      }
    })();
    const cliRevs: number[] = [];
    await waitFor(
      async () => {
        cliRevs.push((await koi.put("cli/k", "hello")).rev);
        await new Promise((r) => setTimeout(r, 200));
        return lines.length > 0;
      },
      "the CLI watch to print",
      30_000,
    );
    const del = await koi.delete("cli/k");
    await waitFor(() => lines.some((l) => l.includes(" delete ")), "the delete line", 10_000);
    assert.match(lines[0], /^a \d+ put cli\/k hello$/);
    assert.equal(lines.at(-1), `a ${del.rev} delete cli/k`);
    cli.kill("SIGINT");
    assert.equal((await cli.status).code, 0);
    await out;
    await new Response(cli.stderr).text();
    cli = undefined;
  } catch (error) {
    console.error(cluster.logs());
    throw error;
  } finally {
    if (cli !== undefined) {
      try {
        cli.kill("SIGKILL");
      } catch {
        // exited
      }
      await cli.status;
    }
    await admin.shutdown();
    await cluster.close();
  }
});
