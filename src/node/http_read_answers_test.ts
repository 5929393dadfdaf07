/**
 * A node builds no more large read answers once 16 MiB of answers are not yet taken. Found
 * by the attack: a flood of KV Connect reads of 20 MiB each (1 MiB values) kept every leader
 * so busy building and sending them that its followers elected others, again and again
 * (terms +12, +10, +5 in one 20 s flood; a normal client's get took 15 s).
 */
import assert from "node:assert/strict";
import { AnswerBytes } from "../http/server.ts";
import { heldAnswer, READ_ANSWERS_MOVING_MAX } from "./_http_kvc.ts";
import { OverloadedError } from "./errors.ts";

Deno.test("read answers: a large one waits while 16 MiB are held; small ones and a first one go", () => {
  const answers = new AnswerBytes(256 << 20);
  let built = 0;
  const build = () => {
    built++;
    return new Response("x");
  };
  const large = 8 << 20;
  // Nothing held: one of any size goes, even over the read bound.
  heldAnswer(answers, READ_ANSWERS_MOVING_MAX * 2, build);
  assert.equal(built, 1);
  answers.release(READ_ANSWERS_MOVING_MAX * 2);
  answers.add(10 << 20); // an answer being sent
  assert.throws(
    () => heldAnswer(answers, large, build),
    (e) => e instanceof OverloadedError && /bound of read answers being sent/.test(e.message),
  );
  assert.equal(built, 1, "refused before it was built");
  heldAnswer(answers, 4 * 1024, build); // small: always
  heldAnswer(answers, 6 << 20, build); // 10 + 6 fits 16 MiB
  assert.equal(built, 3);
  answers.release(10 << 20);
  answers.release(6 << 20);
  assert.equal(answers.held, 0);
  heldAnswer(answers, large, build);
  assert.equal(built, 4);
});

Deno.test("read answers: bytes stalled at a client that stopped reading do not hold other reads back", () => {
  // Found by the attack: one client pipelining 1 MiB GETs it never read, reconnecting before
  // each cut, kept every other client's large reads of that node refused (136 of 136).
  const answers = new AnswerBytes(256 << 20);
  const build = () => new Response("x");
  answers.add(20 << 20); // answers written to a client that stopped reading
  assert.throws(() => heldAnswer(answers, 8 << 20, build), OverloadedError);
  answers.stall(20 << 20); // the server saw them untaken for a second
  assert.equal(answers.held, 20 << 20, "still held: they bound memory");
  assert.equal(answers.moving, 0);
  heldAnswer(answers, 8 << 20, build);
  assert.equal(answers.moving, 8 << 20);
});
