import assert from "node:assert/strict";
import { LineOutput } from "./_output.ts";

Deno.test("line output: a stalled stdout never blocks the caller; overflow is dropped and reported", async () => {
  let release!: () => void;
  const stalled = new Promise<void>((r) => (release = r));
  const written: string[] = [];
  let calls = 0;
  const out = new LineOutput(async (bytes) => {
    if (calls++ === 0) await stalled; // the first write hangs, as a paused terminal does
    written.push(new TextDecoder().decode(bytes));
  }, { lines: 3 });
  out.line("first"); // taken by the writer at once, which then hangs
  for (let i = 0; i < 10; i++) out.line(`line ${i}`); // returns at once every time
  assert.equal(out.dropped, 7, "three queued, seven dropped");
  release();
  await out.flush();
  const text = written.join("");
  assert.match(text, /^first\nline 0\nline 1\nline 2\n/);
  assert.match(text, /\[admin\] dropped 7 lines of node output: stdout was too slow\n$/);
});

Deno.test("line output: a closed stdout is not an error", async () => {
  const out = new LineOutput(() => Promise.reject(new Deno.errors.BrokenPipe("closed")));
  out.line("x");
  await out.flush();
  out.line("y");
  await out.flush();
});

Deno.test("line output: each drop is reported once", async () => {
  const written: string[] = [];
  let hold: Promise<void> | undefined;
  let release = () => {};
  const out = new LineOutput(async (bytes) => {
    if (hold) await hold;
    written.push(new TextDecoder().decode(bytes));
  }, { lines: 1 });
  for (const round of [1, 2]) {
    hold = new Promise<void>((r) => (release = r));
    out.line(`a${round}`);
    out.line(`b${round}`);
    out.line(`c${round}`); // dropped
    release();
    hold = undefined;
    await out.flush();
  }
  assert.equal(written.join("").match(/dropped 1 line of node output/g)?.length, 2);
  out.line("quiet");
  await out.flush();
  assert.equal(written.join("").match(/dropped/g)?.length, 2, "no report without a new drop");
});
