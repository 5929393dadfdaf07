/** The drain's last step: drained clusters stay up until no transaction names them. */
import assert from "node:assert/strict";
import { decode, encode } from "@msgpack/msgpack";
import { type ClusterCalls, settleDrainedTransactions } from "./_drain_txns.ts";
import { TXN_PATHS } from "../txn/mod.ts";

/**
 * Cluster A, primary of one committed decision `t1` whose secondary is X (drained, its intent
 * already applied); X holds nothing. `oldNodes`: records answers without `pending`.
 */
function deployment(oldNodes = false) {
  let forgotten = false;
  const asked: string[] = [];
  const calls: ClusterCalls = {
    post(cluster, path, body) {
      asked.push(`${cluster} ${path}`);
      if (path === TXN_PATHS.records) {
        const decisions = cluster === "A" && !forgotten ? [["t1", 7, ["X"]]] : [];
        const pending = cluster === "A" && !forgotten ? [1, [], ["X"]] : [0, [], []];
        return Promise.resolve(
          encode(oldNodes ? { decisions, stale: [] } : { decisions, stale: [], pending }),
        );
      }
      if (path === TXN_PATHS.held) {
        return Promise.resolve(encode((decode(body) as string[]).map(() => false)));
      }
      if (path === TXN_PATHS.command) {
        // [version, kind, txn, ...]: kind 3 is a forget (src/client/_txn_wire.ts).
        const [, kind, txn] = decode(body) as [number, number, string];
        if (cluster === "A" && kind === 3 && txn === "t1") forgotten = true;
        return Promise.resolve(encode({ state: "committed", vs: 7 }));
      }
      return Promise.reject(new Error(`unexpected ${path}`));
    },
  };
  return { calls, asked, forgotten: () => forgotten };
}

Deno.test("drain: a decision naming the drained cluster as a secondary holds it until the janitor forgot it", async () => {
  // Found in review: only decisions *at* a drained cluster held it, so a drained secondary
  // stopped first; its primary's decision then asked a cluster gone for good, never forgotten.
  const d = deployment();
  const lines: string[] = [];
  await settleDrainedTransactions({
    clusters: ["A", "X"],
    drained: ["X"],
    calls: d.calls,
    signal: AbortSignal.timeout(10_000),
    log: (line) => lines.push(line),
    pollMs: 1,
  });
  assert.ok(d.forgotten(), "A forgot t1 before X was let go");
  assert.ok(d.asked.includes(`X ${TXN_PATHS.held}`), "X was asked whether it holds t1");
  assert.match(lines.join("\n"), /A keeps decisions not yet confirmed by X/);
});

Deno.test("drain: a node that does not say what it keeps holds the drain", async () => {
  const d = deployment(true);
  const lines: string[] = [];
  const abort = new AbortController();
  const settled = settleDrainedTransactions({
    clusters: ["A", "X"],
    drained: ["X"],
    calls: d.calls,
    signal: abort.signal,
    log: (line) => {
      lines.push(line);
      abort.abort(new Error("seen"));
    },
    pollMs: 1,
  });
  await assert.rejects(settled, /seen/);
  assert.match(lines.join("\n"), /does not say which transactions it keeps/);
});
