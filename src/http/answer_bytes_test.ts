/** The count of answer bytes not yet taken: what fits, marks, claims and their expiry. */
import assert from "node:assert/strict";
import { AnswerBytes, HTTP_ANSWER_COUNTED_BYTES_MIN } from "./_answer_bytes.ts";

Deno.test("answer bytes: one answer of any size fits when nothing is held; then the bound decides", () => {
  const answers = new AnswerBytes(100_000);
  assert.ok(answers.fits(1_000_000));
  const big = answers.mark(new Response("x"), 1_000_000);
  assert.equal(answers.held, 1_000_000);
  assert.ok(answers.full);
  assert.ok(!answers.fits(HTTP_ANSWER_COUNTED_BYTES_MIN));
  // Too small to count: always fits, never marked.
  assert.ok(answers.fits(HTTP_ANSWER_COUNTED_BYTES_MIN - 1));
  answers.mark(new Response("y"), HTTP_ANSWER_COUNTED_BYTES_MIN - 1);
  assert.equal(answers.held, 1_000_000);
  assert.equal(answers.refused, 1);
  assert.equal(answers.claim(big), 1_000_000);
  assert.equal(answers.claim(big), 0, "a mark is claimed once");
  assert.equal(answers.held, 0);
  answers.add(60_000);
  assert.ok(answers.fits(40_000));
  assert.ok(!answers.fits(40_001));
  answers.release(60_000);
  assert.throws(() => answers.release(1), /negative/);
});

Deno.test("answer bytes: a mark no server claims is dropped after 5 s", () => {
  let t = 0;
  const answers = new AnswerBytes(100_000, () => t);
  const lost = answers.mark(new Response("x"), 50_000);
  t = 4_000;
  const kept = answers.mark(new Response("y"), 30_000);
  assert.equal(answers.held, 80_000);
  t = 5_001;
  assert.equal(answers.held, 30_000);
  assert.equal(answers.claim(lost), 0, "expired: its bytes were given back already");
  assert.equal(answers.claim(kept), 30_000);
  assert.equal(answers.held, 0);
});

Deno.test("answer bytes: take counts bytes at once until given back, once", () => {
  const answers = new AnswerBytes(100_000);
  const give = answers.take(60_000);
  assert.ok(give !== undefined);
  assert.equal(answers.held, 60_000);
  assert.equal(answers.take(60_000), undefined, "the second does not fit beside the first");
  assert.equal(answers.held, 60_000);
  give();
  give();
  assert.equal(answers.held, 0, "given back once");
  const small = answers.take(HTTP_ANSWER_COUNTED_BYTES_MIN - 1)!;
  assert.equal(answers.held, 0, "too small to count");
  small();
  assert.equal(answers.held, 0);
});

Deno.test("answer bytes: the bound is a positive integer", () => {
  for (const bad of [0, -1, 1.5, Number.NaN]) {
    assert.throws(() => new AnswerBytes(bad), RangeError);
  }
});
