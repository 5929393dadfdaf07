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

Deno.test({
  name: "e2e: scripts/test-single-cluster.sh finds Deno without it on PATH (Node.js and npm only)",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    // A PATH with the system tools (bash, curl, node, npm) but not this Deno's directory.
    const denoDir = Deno.execPath().replace(/\/[^/]+$/, "");
    const path = (Deno.env.get("PATH") ?? "").split(":").filter((d) => d !== "" && d !== denoDir)
      .filter((d) => {
        try {
          Deno.statSync(`${d}/deno`);
          return false; // another deno on PATH would hide the fallback
        } catch {
          return true;
        }
      });
    const out = await new Deno.Command("bash", {
      args: [`${ROOT}scripts/test-single-cluster.sh`],
      // The rest of the environment stays (npm needs e.g. the machine's CA settings); an empty
      // DENO means "not given".
      env: { PATH: path.join(":"), DENO: "" },
      stdin: "null",
    }).output();
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, text);
    assert.match(text, /all 20 acknowledged writes are intact/);
  },
});
