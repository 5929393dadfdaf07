/** A scripted, in-memory {@linkcode NodeService} and helpers for the HTTP tests. */

import { EMPTY_MEMBERSHIP, type Membership, NotLeaderError } from "../raft/mod.ts";
import type { KvCommand, KvResult, KvValue } from "../storage/mod.ts";
import { parseRequestId } from "../storage/mod.ts";
import { createNodeApp, type HttpOptions } from "./http.ts";
import type {
  KeyRange,
  ListPage,
  MemberSpec,
  NodeService,
  NodeStatus,
  RangeEntry,
} from "./service.ts";

/** The operations a test can make fail. */
export type FakeOperation =
  | "get"
  | "list"
  | "write"
  | "addMember"
  | "removeMember"
  | "transferLeader"
  | "snapshot";

/** One call the fake received. */
export type FakeCall =
  | { op: "get"; key: Uint8Array; stale: boolean }
  | { op: "readRanges"; ranges: readonly KeyRange[]; stale: boolean }
  | {
    op: "list";
    options: { prefix: Uint8Array; after?: Uint8Array; limit: number; stale: boolean };
  }
  | { op: "write"; command: KvCommand }
  | { op: "addMember"; member: MemberSpec }
  | { op: "removeMember"; id: string }
  | { op: "transferLeader"; to: string }
  | { op: "snapshot" };

/** Initial state of a {@linkcode FakeNodeService}. */
export interface FakeOptions {
  /** This node; default "n1". */
  nodeId?: string;
  /** The leader it knows; default itself (it leads). "" = none known. */
  leader?: string;
  /** The leader's HTTP address; default "10.0.0.9:7201" when another node leads. */
  leaderHttp?: string;
  /** Default 7. */
  epoch?: number;
  /** Which keys the cluster owns; default all. */
  owns?: (key: Uint8Array) => boolean;
  /** Store limit for `storage_full`; default unlimited. */
  bytesMax?: number;
}

/** Keys as binary strings (one char per byte): JS string order is then byte order. */
function binary(bytes: Uint8Array): string {
  let text = "";
  for (const byte of bytes) text += String.fromCharCode(byte);
  return text;
}

function unbinary(text: string): Uint8Array {
  return Uint8Array.from(text, (char) => char.charCodeAt(0));
}

/**
 * A node with an in-memory store. It leads when `leaderId === nodeId`; otherwise operations
 * that need the leader throw `NotLeaderError`. `failures` makes the next call of an operation
 * throw; `calls` records every call.
 */
export class FakeNodeService implements NodeService {
  readonly nodeId: string;
  readonly clusterId = "a";
  /** The leader this node knows ("" = none). */
  leaderId: string;
  /** The leader's HTTP address. */
  leaderAddress: string | undefined;
  /** Whether `/healthz` is ready. */
  isLoaded = true;
  /** The routing epoch. */
  epochValue: number;
  /** Which keys the cluster owns. */
  ownsKey: (key: Uint8Array) => boolean;
  /** The store limit. */
  bytesMax: number;
  /** The error the next call of each operation throws. */
  readonly failures: Map<FakeOperation, Error> = new Map();
  /** Every call, in order. */
  readonly calls: FakeCall[] = [];
  /** What `metrics()` answers. */
  metricsText = "# TYPE koi_up gauge\nkoi_up 1\n";
  #data = new Map<string, KvValue>();
  #bytes = 0;
  #index = 0;
  #requests = new Map<string, { seq: number; result: KvResult }>();

  /** Creates the fake. */
  constructor(options: FakeOptions = {}) {
    this.nodeId = options.nodeId ?? "n1";
    this.leaderId = options.leader ?? this.nodeId;
    this.leaderAddress = options.leaderHttp ??
      (this.leaderId === this.nodeId || this.leaderId === "" ? undefined : "10.0.0.9:7201");
    this.epochValue = options.epoch ?? 7;
    this.ownsKey = options.owns ?? (() => true);
    this.bytesMax = options.bytesMax ?? Infinity;
  }

  /** Sets a key directly (no call recorded); answers its rev. */
  seed(key: string | Uint8Array, value: string | Uint8Array): number {
    const bytes = typeof key === "string" ? new TextEncoder().encode(key) : key;
    const data = typeof value === "string" ? new TextEncoder().encode(value) : value;
    const rev = ++this.#index;
    this.#data.set(binary(bytes), { value: data, rev });
    return rev;
  }

  #maybeFail(op: FakeOperation): void {
    const error = this.failures.get(op);
    if (error === undefined) return;
    this.failures.delete(op);
    throw error;
  }

  #needLeader(): void {
    if (this.leaderId !== this.nodeId) throw new NotLeaderError(this.nodeId, this.leaderId);
  }

  loaded(): boolean {
    return this.isLoaded;
  }
  leader(): string {
    return this.leaderId;
  }
  leaderHttp(): string | undefined {
    return this.leaderAddress;
  }
  epoch(): number {
    return this.epochValue;
  }
  owner(key: Uint8Array): string {
    return this.ownsKey(key) ? this.clusterId : "elsewhere";
  }

  owns(key: Uint8Array): boolean {
    return this.ownsKey(key);
  }

  get(key: Uint8Array, options: { stale: boolean }): Promise<KvValue | undefined> {
    this.calls.push({ op: "get", key, stale: options.stale });
    this.#maybeFail("get");
    if (!options.stale) this.#needLeader();
    return Promise.resolve(this.#data.get(binary(key)));
  }

  list(
    options: { prefix: Uint8Array; after?: Uint8Array; limit: number; stale: boolean },
  ): Promise<ListPage> {
    this.calls.push({ op: "list", options });
    this.#maybeFail("list");
    if (!options.stale) this.#needLeader();
    const prefix = binary(options.prefix);
    const after = options.after === undefined ? undefined : binary(options.after);
    const keys = [...this.#data.keys()]
      .filter((k) => k.startsWith(prefix) && (after === undefined || k > after))
      .sort();
    const items = keys.slice(0, options.limit).map((k) => ({
      key: unbinary(k),
      rev: this.#data.get(k)!.rev,
    }));
    return Promise.resolve({ items, more: keys.length > options.limit });
  }

  /** Ranges read nothing here (a follower refuses a linearizable read: it is forwarded). */
  readRanges(ranges: readonly KeyRange[], options: { stale: boolean }): Promise<RangeEntry[][]> {
    this.calls.push({ op: "readRanges", ranges, stale: options.stale });
    if (!options.stale) this.#needLeader();
    return Promise.resolve(ranges.map(() => []));
  }

  write(command: KvCommand): Promise<KvResult> {
    this.calls.push({ op: "write", command });
    this.#maybeFail("write");
    this.#needLeader();
    const id = command.requestId === undefined ? undefined : parseRequestId(command.requestId);
    const previous = id === undefined ? undefined : this.#requests.get(id.client);
    if (id !== undefined && previous !== undefined && id.seq <= previous.seq) {
      return Promise.resolve(
        id.seq === previous.seq
          ? previous.result
          : { ok: false, code: "stale_request", seq: previous.seq },
      );
    }
    const result = this.#apply(command);
    if (id !== undefined) this.#requests.set(id.client, { seq: id.seq, result });
    return Promise.resolve(result);
  }

  #apply(command: KvCommand): KvResult {
    for (const [i, check] of command.checks.entries()) {
      const rev = this.#data.get(binary(check.key))?.rev ?? 0;
      if (rev !== check.rev) return { ok: false, code: "precondition_failed", check: i, rev };
    }
    let bytes = this.#bytes;
    for (const m of command.mutations) {
      const old = this.#data.get(binary(m.key));
      if (old !== undefined) bytes -= m.key.length + old.value.length;
      if (m.type === "set") bytes += m.key.length + m.value.length;
    }
    if (bytes > this.bytesMax) return { ok: false, code: "storage_full", bytesMax: this.bytesMax };
    const rev = ++this.#index;
    this.#bytes = bytes;
    const existed = command.mutations.map((m) => {
      const k = binary(m.key);
      const had = this.#data.has(k);
      if (m.type === "set") this.#data.set(k, { value: m.value, rev });
      else this.#data.delete(k);
      return had;
    });
    return { ok: true, rev, existed };
  }

  status(): NodeStatus {
    return {
      node: this.nodeId,
      cluster: this.clusterId,
      role: this.leaderId === this.nodeId ? "leader" : "follower",
      term: 3,
      leader: this.leaderId,
      commit: this.#index,
      applied: this.#index,
      snapshot: 0,
      epoch: this.epochValue,
      keys: this.#data.size,
      bytes: 0,
      members: [{ id: this.nodeId, voter: true, match: this.#index }],
    };
  }

  addMember(member: MemberSpec): Promise<void> {
    this.calls.push({ op: "addMember", member });
    this.#maybeFail("addMember");
    this.#needLeader();
    return Promise.resolve();
  }

  removeMember(id: string): Promise<void> {
    this.calls.push({ op: "removeMember", id });
    this.#maybeFail("removeMember");
    this.#needLeader();
    return Promise.resolve();
  }

  transferLeader(to: string): Promise<void> {
    this.calls.push({ op: "transferLeader", to });
    this.#maybeFail("transferLeader");
    this.#needLeader();
    this.leaderId = to;
    return Promise.resolve();
  }

  snapshot(): Promise<{ index: number }> {
    this.calls.push({ op: "snapshot" });
    this.#maybeFail("snapshot");
    return Promise.resolve({ index: this.#index });
  }

  metrics(): string {
    return this.metricsText;
  }

  membership(): Membership {
    return { ...EMPTY_MEMBERSHIP, voters: [this.nodeId] };
  }
}

/** One request the app forwarded. */
export interface ForwardedRequest {
  readonly url: string;
  readonly method: string;
  readonly headers: Headers;
  readonly body: Uint8Array | undefined;
}

/** A fake, an app over it, and the requests the app forwarded. */
export interface Harness {
  readonly service: FakeNodeService;
  readonly app: ReturnType<typeof createNodeApp>;
  readonly forwarded: ForwardedRequest[];
  readonly logged: unknown[];
}

/**
 * Builds a harness. `answer` is what the "leader" answers a forwarded request (default:
 * 200 `{"forwarded":true}`); it may also never resolve, or throw.
 */
export function harness(
  fake: FakeOptions = {},
  options: Partial<HttpOptions> & {
    answer?: (request: ForwardedRequest, signal: AbortSignal | undefined) => Promise<Response>;
  } = {},
): Harness {
  const service = new FakeNodeService(fake);
  const forwarded: ForwardedRequest[] = [];
  const logged: unknown[] = [];
  const answer = options.answer ??
    (() => Promise.resolve(Response.json({ forwarded: true }, { status: 200 })));
  const app = createNodeApp({
    log: (_message, error) => logged.push(error),
    ...options,
    service,
    forward: (url, init) => {
      const body = init.body instanceof Uint8Array ? init.body : undefined;
      const request = {
        url,
        method: init.method ?? "GET",
        headers: new Headers(init.headers),
        body,
      };
      forwarded.push(request);
      return answer(request, init.signal ?? undefined);
    },
  });
  return { service, app, forwarded, logged };
}

/** The `{"error": {"code", "message"}}` of an answer. */
export async function errorOf(response: Response): Promise<{ code: string; message: string }> {
  const body = await response.json();
  return body.error;
}
