import assert from "node:assert/strict";
import { RequestAdmission } from "./_admission.ts";

const limits = { pipelineDepthMax: 3, bodyBytesWaitingMax: 100, requestsWaitingMax: 1000 };

Deno.test("admission: a connection may have pipelineDepthMax requests waiting, not one more", () => {
  const a = new RequestAdmission<object>(limits);
  const c = {}, other = {};
  assert.equal(a.arrive(c, 0), "admit");
  assert.equal(a.arrive(c, 0), "admit");
  assert.equal(a.arrive(c, 0), "admit");
  assert.equal(a.arrive(c, 0), "close");
  assert.equal(a.arrive(other, 0), "admit", "other connections are not affected");
  a.leave(c, 0, "admit");
  assert.equal(a.depth(c), 2);
  assert.equal(a.arrive(c, 0), "admit", "an answer makes room");
  assert.deepEqual(a.stats(), { shed: 0, closed: 1 });
});

Deno.test("admission: bodies over the shared budget are shed, and take a place on their connection", () => {
  const a = new RequestAdmission<object>(limits);
  const c1 = {}, c2 = {}, c3 = {};
  assert.equal(a.arrive(c1, 60), "admit");
  assert.equal(a.bodyBytes, 60);
  assert.equal(a.arrive(c2, 41), "shed");
  assert.equal(a.depth(c2), 1, "a shed request waits for its turn like any other");
  assert.equal(a.bodyBytes, 60, "but holds no body bytes");
  assert.equal(a.arrive(c3, 40), "admit", "what fits is admitted");
  assert.equal(a.arrive(c3, 0), "admit", "a bodiless request needs no budget");
  a.leave(c2, 41, "shed");
  assert.equal(a.bodyBytes, 100);
  a.leave(c1, 60, "admit");
  assert.equal(a.bodyBytes, 40);
  assert.equal(a.arrive(c2, 41), "admit");
  assert.deepEqual(a.stats(), { shed: 1, closed: 0 });
});

Deno.test("admission: past requestsWaitingMax in all, requests are shed until one is answered", () => {
  const a = new RequestAdmission<object>({ ...limits, requestsWaitingMax: 3 });
  const c1 = {}, c2 = {}, c3 = {};
  assert.equal(a.arrive(c1, 0), "admit");
  assert.equal(a.arrive(c1, 0), "admit");
  assert.equal(a.arrive(c2, 0), "admit");
  assert.equal(a.waiting, 3);
  assert.equal(a.arrive(c3, 0), "shed");
  a.leave(c3, 0, "shed");
  assert.equal(a.waiting, 3, "a shed request was never counted as waiting");
  a.leave(c1, 0, "admit");
  assert.equal(a.arrive(c3, 0), "admit");
  assert.equal(a.waiting, 3);
});

Deno.test("admission: chunked bodies reserve as they are read and give it back", () => {
  const a = new RequestAdmission<object>(limits);
  assert.equal(a.reserve(70), true);
  assert.equal(a.reserve(31), false, "nothing taken when it does not fit");
  assert.equal(a.bodyBytes, 70);
  a.release(70);
  assert.equal(a.bodyBytes, 0);
  a.release(5);
  assert.equal(a.bodyBytes, 0, "never below zero");
  assert.equal(a.stats().shed, 1);
});
