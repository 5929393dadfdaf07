/** In-memory clusters for the tests of the admin's moves (src/admin/reshard*_test.ts). */
import { type KoiConfig, parseConfig } from "../config/mod.ts";
import {
  encodeRouteCommand,
  type KvResult,
  KvStateMachine,
  type RouteCommand,
} from "../storage/mod.ts";
import type { ClusterRouting, MoveTransport, MovingKey, RouteAnswer } from "./_move_transport.ts";

/** A config of single-node clusters `clusters` at `epoch` (the same ports for the same ids). */
export function config(clusters: string[], epoch: number): KoiConfig {
  let port = 7100;
  const text = `[admin]\nhttp = "127.0.0.1:7000"\n[routing]\nepoch = ${epoch}\n` +
    clusters.map((id) =>
      `[[clusters]]\nid = "${id}"\n[[clusters.nodes]]\nid = "${id}1"\nraft = "127.0.0.1:${port++}"\n` +
      `http = "127.0.0.1:${port++}"\ndata = "d-${id}"\n`
    ).join("");
  return parseConfig(text, { baseDir: "/tmp" });
}

export function apply(sm: KvStateMachine, data: Uint8Array): KvResult {
  const e: Parameters<KvStateMachine["apply"]>[0] = {
    index: sm.applied + 1,
    term: 1,
    type: "normal",
    data,
  };
  return sm.apply(e)!;
}

/** Clusters in memory; `beforeCall` runs before every call (writes, crashes). */
export class MemoryClusters implements MoveTransport {
  readonly sms = new Map<string, KvStateMachine>();
  beforeCall: () => void = () => {};
  calls = 0;

  constructor(ids: string[]) {
    for (const id of ids) this.sms.set(id, new KvStateMachine({ clusterId: id }));
  }

  add(id: string): void {
    this.sms.set(id, new KvStateMachine({ clusterId: id }));
  }

  #sm(id: string): KvStateMachine {
    this.calls++;
    this.beforeCall();
    return this.sms.get(id)!;
  }

  route(cluster: string, command: RouteCommand): Promise<RouteAnswer> {
    const r = apply(this.#sm(cluster), encodeRouteCommand(command));
    if (r.ok) return Promise.resolve({ ok: true, rev: r.rev });
    const message = "reason" in r ? r.reason : r.code;
    return Promise.resolve({ ok: false, code: r.code, message });
  }

  keys(
    cluster: string,
    from: Uint8Array,
    upTo: Uint8Array | null | undefined,
    limits: { count: number; bytes: number },
  ): Promise<{ items: MovingKey[]; next: Uint8Array | null; rev: number }> {
    const sm = this.#sm(cluster);
    // A small scan bound, so that pages also stop short of their count.
    const page = sm.movingKeys(from, { ...limits, scan: 37, upTo: upTo ?? null });
    return Promise.resolve({ ...page, rev: sm.rev });
  }

  sessions(cluster: string, after: number): ReturnType<MoveTransport["sessions"]> {
    return Promise.resolve(this.#sm(cluster).sessionsAfter(after, 3));
  }

  routing(cluster: string): Promise<ClusterRouting | undefined> {
    const r = this.#sm(cluster).routing;
    if (r === undefined) return Promise.resolve(undefined);
    const cursor = (c: string | null) =>
      c === null ? null : Uint8Array.from(c, (ch) => ch.charCodeAt(0));
    return Promise.resolve({
      epoch: r.table.epoch,
      ...(r.move === undefined ? {} : {
        move: {
          epoch: r.move.table.epoch,
          fenced: cursor(r.move.fenced),
          received: new Map([...r.move.received].map(([id, c]) => [id, cursor(c)])),
        },
      }),
    });
  }
}
