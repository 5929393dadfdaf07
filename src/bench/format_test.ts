import assert from "node:assert/strict";
import { formatLoad } from "./_format.ts";
import { Recorder } from "./_stats.ts";
import type { LoadReport } from "./run_load.ts";

function report(): LoadReport {
  const recorder = new Recorder(["a", "b", "c"]);
  for (let i = 1; i <= 100; i++) recorder.success("read", "a", i / 10, i % 4 === 0);
  for (let i = 1; i <= 50; i++) recorder.success("update", "b", i);
  recorder.failure("update", "b", "timeout", 'put "user1": cluster b timed out');
  return {
    target: "koi",
    deployment: { admin: "http://127.0.0.1:7000/", epoch: 1, scheme: "carp64" },
    workload: "A",
    mix: "50 % reads, 50 % updates",
    readFraction: 0.5,
    distribution: "zipfian",
    keys: 100_000,
    valueBytes: 100,
    clients: 16,
    consistency: "linearizable",
    seed: 42,
    limit: { seconds: 10, ops: null },
    warmupSeconds: 1,
    preload: null,
    measured: recorder.report(2),
  };
}

Deno.test("formatLoad: the summary, the latency table, errors by kind, the clusters", () => {
  const text = formatLoad(report());
  const lines = text.split("\n");
  assert.match(lines[0], /workload A \(50 % reads, 50 % updates\), zipfian over 100,000 keys/);
  assert.match(
    lines[1],
    /target koi \(admin http:\/\/127\.0\.0\.1:7000\/, epoch 1, scheme carp64\), 16 clients, seed 42, until 10 s/,
  );
  assert.match(
    text,
    /measured 2\.00 s after a 1 s warm-up: 151 ops, 75\.5 ops\/s, 1 errors \(0\.66 %\): timeout 1/,
  );
  assert.match(text, /^op +ops +ops\/s +errors +misses +p50 ms +p95 ms +p99 ms +max ms$/m);
  // reads 0.1 .. 10 ms: p50 5, p95 9.5, p99 9.9 (within 1 %), max 10; 25 misses
  assert.match(
    text,
    /^read +100 +50\.0 +0 +25 +(4\.9|5\.0)\d\d +9\.[45]\d\d +9\.[89]\d\d +10\.00$/m,
  );
  // updates 1 .. 50 ms (the failed one has no latency): p50 25, p95 48, p99 50
  assert.match(text, /^update +51 +25\.5 +1 +- +2[45]\.\d\d +4[78]\.\d\d +(49|50)\.\d\d +50\.00$/m);
  assert.match(text, /^all +151 +75\.5 +1 +25 /m);
  assert.match(text, /^errors by kind: timeout 1$/m);
  assert.match(text, /^ {2}timeout, e\.g\.: put "user1": cluster b timed out$/m);
  assert.match(text, /^a +100 +66\.23 % +0$/m);
  assert.match(text, /^b +51 +33\.77 % +1$/m);
  assert.match(text, /^c +0 +0\.00 % +0$/m);
});
