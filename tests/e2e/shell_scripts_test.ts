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
