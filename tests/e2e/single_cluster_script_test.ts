import assert from "node:assert/strict";

const ROOT = new URL("../../", import.meta.url).pathname;

Deno.test({
  name: "e2e: scripts/test-single-cluster.sh passes (kill -9 the leader, restart, catch up)",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    // The script stops its own processes by PID on every exit path.
    const out = await new Deno.Command("bash", {
      args: [`${ROOT}scripts/test-single-cluster.sh`],
      env: { DENO: Deno.execPath() },
      stdin: "null",
    }).output();
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, text);
    assert.match(text, /all 20 acknowledged writes are intact/);
    assert.match(text, /caught up: every write is there/);
  },
});
