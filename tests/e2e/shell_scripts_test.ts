/** Every shell script of the repository parses (`bash -n`): benchmarks are not run by the tests. */
import assert from "node:assert/strict";

const ROOT = new URL("../../", import.meta.url).pathname;

Deno.test("every shell script in bench/ and scripts/ parses", async () => {
  const scripts: string[] = [];
  for (const dir of ["bench", "scripts", ".ci"]) {
    for await (const e of Deno.readDir(`${ROOT}${dir}`)) {
      if (e.isFile && (e.name.endsWith(".sh") || (dir === ".ci" && e.name === "run"))) {
        scripts.push(`${dir}/${e.name}`);
      }
    }
  }
  assert.ok(scripts.includes("bench/compare_etcd.sh"), scripts.join(", "));
  for (const script of scripts) {
    const out = await new Deno.Command("bash", { args: ["-n", `${ROOT}${script}`] }).output();
    assert.equal(out.code, 0, `${script}: ${new TextDecoder().decode(out.stderr)}`);
  }
});

Deno.test("no shell script ends a loop body with `[ … ] && …` (under set -e a false last test ends the script)", async () => {
  // scripts/test-single-cluster.sh died this way whenever the leader was the last node.
  const bad = /\bdo\s+\[[^\]]*\]\s*&&[^;]*;\s*done/;
  for (const dir of ["bench", "scripts", ".ci"]) {
    for await (const e of Deno.readDir(`${ROOT}${dir}`)) {
      if (!e.isFile) continue;
      const text = await Deno.readTextFile(`${ROOT}${dir}/${e.name}`);
      const line = text.split("\n").findIndex((l) => bad.test(l));
      assert.equal(line, -1, `${dir}/${e.name}:${line + 1}`);
    }
  }
});
