/** `koi client watch` as a process, against a fake admin and fake nodes. */
import assert from "node:assert/strict";
import { FakeDeployment, keyOwnedBy, waitFor } from "../../src/client/_fake_test_util.ts";
import { koi, spawnKoi } from "./_cli_test_util.ts";

const TWO = {
  clusters: [
    { id: "a", nodes: ["a1"] },
    { id: "b", nodes: ["b1"] },
  ],
};

Deno.test("koi client watch: --help, and usage errors exit 2", async () => {
  const [helpRun, bad, extra] = await Promise.all([
    koi(["watch", "--help"]),
    koi(["watch", "--from-rev", "a"]),
    koi(["watch", "p", "q"]),
  ]);
  assert.equal(helpRun.code, 0, helpRun.err);
  assert.match(helpRun.out, /^Usage: koi client watch \[<prefix>\] \[--from-rev <cluster>=<rev>/);
  assert.match(helpRun.out, /<cluster> <rev> put <key> <value>/);
  assert.equal(bad.code, 2);
  assert.match(bad.err, /Invalid --from-rev: a \(expected CLUSTER=REV, e\.g\. a=42\)/);
  assert.match(bad.err, /Usage: koi client watch/);
  assert.equal(extra.code, 2);
  assert.match(extra.err, /Unexpected argument: q/);
});

Deno.test("koi client watch: prints one line per change of every cluster until Ctrl-C (exit 0)", async () => {
  const d = FakeDeployment.start(TWO);
  const a = d.cluster("a");
  const b = d.cluster("b");
  a.set("user:old", "before"); // rev 1 of a: after --from-rev a=0, so it is printed
  const child = spawnKoi(["watch", "user:", "--admin", d.adminUrl, "--from-rev", "a=0"]);
  const lines: string[] = [];
  const reading = (async () => {
    let text = "";
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
      text += chunk;
      const parts = text.split("\n");
      text = parts.pop()!;
      lines.push(...parts);
    }
  })();
  const errors = new Response(child.stderr).text();
  try {
    await waitFor(() => d.node("a1").watches + d.node("b1").watches === 2, "both streams", 30_000);
    const keyA = keyOwnedBy(d.nodeTable, "a", "user:");
    const keyB = keyOwnedBy(d.nodeTable, "b", "user:");
    a.set(keyA, "Ada");
    b.set(keyB, new Uint8Array([0, 1, 2]));
    b.set("other", "not watched");
    b.set(keyB, "x".repeat(300));
    a.changed({ rev: ++a.rev, type: "delete", key: new TextEncoder().encode(keyA) });
    await waitFor(() => lines.length >= 5, "five lines", 10_000);
    const of = (c: string) => lines.filter((l) => l.startsWith(`${c} `));
    assert.deepEqual(of("a"), [
      "a 1 put user:old before",
      `a 2 put ${keyA} Ada`,
      `a 3 delete ${keyA}`,
    ]);
    assert.deepEqual(of("b"), [`b 1 put ${keyB} <3 bytes>`, `b 3 put ${keyB} <300 bytes>`]);
    child.kill("SIGINT");
    const status = await child.status;
    await reading;
    assert.equal(status.code, 0, await errors);
    assert.equal(await errors, "");
  } finally {
    try {
      child.kill("SIGKILL");
    } catch {
      // exited
    }
    await child.status;
    await d.close();
  }
});
