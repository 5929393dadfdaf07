/**
 * {@linkcode EtcdGrpcTarget}: etcd through its gRPC API with the npm `etcd3` client, the way a
 * Node application talks to etcd. Loaded on demand by `koi bench load --target etcd-grpc`
 * (the package and gRPC take a third of a second to load; no other command needs them).
 *
 * @module
 */
import { Buffer } from "node:buffer";
import {
  ClientClosedError,
  Etcd3,
  EtcdError,
  GRPCCancelledError,
  GRPCDeadlineExceededError,
  GRPCResourceExhastedError,
  GRPCUnavailableError,
  type IOptions,
} from "etcd3";
import { TIMEOUT_MS_DEFAULT } from "../client/mod.ts";
import { EtcdTarget, type EtcdTargetOptions, grpcKind } from "./_etcd.ts";
import type { ReadOptions } from "./_target.ts";

/** A per-host fault policy of etcd3 (cockatiel's `IPolicy`). */
type HostPolicy = ReturnType<NonNullable<NonNullable<IOptions["faultHandling"]>["host"]>>;

const NEVER = new AbortController().signal;

/**
 * A per-host policy that only calls through. etcd3's default is a circuit breaker that,
 * after three failures in a row (three timeouts of one slow call, retries included), fails
 * every call on that host for 5 s without sending it: a load run would count thousands of
 * errors that no server produced. Its global policy (up to 3 retries of a transient error,
 * on the next host each time) stays.
 */
const PASS_THROUGH: HostPolicy = {
  _altReturn: undefined as never,
  onSuccess: () => ({ dispose() {} }),
  onFailure: () => ({ dispose() {} }),
  execute: async (fn) => await fn({ signal: NEVER }),
};

/** The report's kind of each etcd3 error class; the first match counts. */
const KINDS: readonly [abstract new (...args: never[]) => Error, string][] = [
  [GRPCDeadlineExceededError, "timeout"],
  [GRPCUnavailableError, "unavailable"],
  [GRPCCancelledError, "cancelled"],
  [GRPCResourceExhastedError, "resource_exhausted"],
  [ClientClosedError, "closed"],
];

/**
 * The report's kind of an error of etcd3: by class (`timeout`, `unavailable`, `cancelled`,
 * `resource_exhausted`, `closed`), else by the gRPC code its message starts with
 * (`8 RESOURCE_EXHAUSTED: …`), else `etcd` for another etcd server error, else `other`.
 */
export function etcd3ErrorKind(error: unknown): string {
  for (const [type, kind] of KINDS) if (error instanceof type) return kind;
  if (error instanceof Error) {
    const code = /^(\d{1,2}) [A-Z_]+:/.exec(error.message)?.[1];
    if (code !== undefined) return grpcKind(Number(code));
    if (error instanceof EtcdError) return "etcd";
  }
  return "other";
}

/**
 * etcd over gRPC: one `Etcd3` client shared by every caller (one HTTP/2 connection per
 * endpoint, calls multiplexed on it; etcd3 picks an endpoint per call). A get is a range of
 * the one key that returns its value (linearizable; serializable for a stale read), a put is
 * an unconditional put; each call has a deadline of the budget, retries included. Error
 * kinds: {@linkcode etcd3ErrorKind} (`closed` after {@linkcode EtcdGrpcTarget.close}).
 */
export class EtcdGrpcTarget extends EtcdTarget {
  readonly name = "etcd-grpc";
  readonly #client: Etcd3;
  readonly #timeoutMs: number;

  private constructor(client: Etcd3, endpoints: readonly string[], timeoutMs: number) {
    super(endpoints);
    this.#client = client;
    this.#timeoutMs = timeoutMs;
  }

  /**
   * Connects to `endpoints` (`host:port`) and asks one for its status (the version in the
   * report); throws etcd3's error when it does not answer within the budget.
   */
  static async connect(
    endpoints: readonly string[],
    options: EtcdTargetOptions = {},
  ): Promise<EtcdGrpcTarget> {
    const timeoutMs = options.timeoutMs ?? TIMEOUT_MS_DEFAULT;
    const client = new Etcd3({
      hosts: endpoints.map((e) => `http://${e}`),
      faultHandling: { host: () => PASS_THROUGH },
    });
    const target = new EtcdGrpcTarget(client, endpoints, timeoutMs);
    try {
      const status = await client.maintenance.status({ deadline: Date.now() + timeoutMs });
      target.version = status.version;
      return target;
    } catch (error) {
      await target.close();
      throw error;
    }
  }

  /** An unconditional put of `value` under `key`. */
  async put(key: string, value: Uint8Array): Promise<void> {
    await this.#client.put(key)
      .value(Buffer.from(value.buffer, value.byteOffset, value.byteLength))
      .options({ deadline: Date.now() + this.#timeoutMs });
  }

  /** Reads `key` with its value: linearizable, or serializable (member-local) when `stale`. */
  async get(key: string, options: ReadOptions): Promise<boolean> {
    const value = await this.#client.get(key)
      .serializable(options.stale)
      .options({ deadline: Date.now() + this.#timeoutMs })
      .buffer();
    return value !== null;
  }

  /** The kind of an etcd3 error: {@linkcode etcd3ErrorKind}. */
  errorKind(error: unknown): string {
    return etcd3ErrorKind(error);
  }

  /** Closes the client's channels; calls in flight fail. */
  close(): Promise<void> {
    this.#client.close();
    return Promise.resolve();
  }
}
