/**
 * The check of the admin's `GET /v1/clusters` answer: every field of
 * {@linkcode DeploymentStatus}, with its type, so that no reader of the answer (the status
 * table of `koi client status` among them) meets a missing or mistyped field.
 */

import type { AdminNodeReport, DeploymentStatus, NodeStatus } from "./_status.ts";
import { isObject, shown } from "./_table.ts";
import { KoiError } from "./errors.ts";

/** Reads the fields of one JSON object at `path`; `bad` throws naming the field. */
class Fields {
  constructor(
    readonly value: Record<string, unknown>,
    readonly path: string,
    readonly bad: (what: string) => never,
  ) {}

  #field(name: string): [unknown, string] {
    return [this.value[name], this.path === "" ? name : `${this.path}.${name}`];
  }

  string(name: string): string {
    const [v, at] = this.#field(name);
    return typeof v === "string" ? v : this.bad(`${at} ${shown(v)}, expected a string`);
  }

  boolean(name: string): boolean {
    const [v, at] = this.#field(name);
    return typeof v === "boolean" ? v : this.bad(`${at} ${shown(v)}, expected true or false`);
  }

  /** A count or an index: a safe integer >= 0. */
  count(name: string): number {
    const [v, at] = this.#field(name);
    return Number.isSafeInteger(v) && (v as number) >= 0
      ? v as number
      : this.bad(`${at} ${shown(v)}, expected an integer >= 0`);
  }

  number(name: string): number {
    const [v, at] = this.#field(name);
    return typeof v === "number" && Number.isFinite(v)
      ? v
      : this.bad(`${at} ${shown(v)}, expected a number`);
  }

  /** The objects of the array `name`, each as {@linkcode Fields}. */
  objects(name: string): Fields[] {
    const [v, at] = this.#field(name);
    if (!Array.isArray(v)) return this.bad(`${at} ${shown(v)}, expected an array`);
    return v.map((item, i) => fieldsOf(item, `${at}[${i}]`, this.bad));
  }

  /** The object `name`, or null when it is null. */
  objectOrNull(name: string): Fields | null {
    const [v, at] = this.#field(name);
    return v === null ? null : fieldsOf(v, at, this.bad);
  }
}

function fieldsOf(value: unknown, path: string, bad: (what: string) => never): Fields {
  if (!isObject(value)) return bad(`${path || "the answer"} ${shown(value)}, expected an object`);
  return new Fields(value, path, bad);
}

/**
 * Checks the admin's `/v1/clusters` answer against {@linkcode DeploymentStatus}; throws
 * `KoiError("bad_response")` naming the first field that is missing or of the wrong type.
 * Returns the answer itself (fields the client does not know included).
 */
export function parseDeploymentStatus(json: unknown, who: string): DeploymentStatus {
  const bad = (what: string): never => {
    throw new KoiError("bad_response", `${who} answered an invalid /v1/clusters: ${what}`);
  };
  const top = fieldsOf(json, "", bad);
  top.count("epoch");
  top.string("scheme");
  top.boolean("healthy");
  for (const cluster of top.objects("clusters")) {
    cluster.string("id");
    cluster.number("loadFactor");
    cluster.string("leader");
    for (const node of cluster.objects("nodes")) checkNode(node);
  }
  return json as DeploymentStatus;
}

function checkNode(node: Fields): void {
  const fields: Record<keyof AdminNodeReport, () => unknown> = {
    id: () => node.string("id"),
    http: () => node.string("http"),
    raft: () => node.string("raft"),
    pid: () => node.value.pid === null || node.count("pid"),
    process: () => node.value.process === undefined || node.string("process"),
    restarts: () => node.count("restarts"),
    reachable: () => node.boolean("reachable"),
    error: () => node.string("error"),
    status: () => {
      const status = node.objectOrNull("status");
      if (status !== null) checkNodeStatus(status);
    },
  };
  for (const check of Object.values(fields)) check();
}

function checkNodeStatus(status: Fields): void {
  const fields: Record<keyof NodeStatus, () => unknown> = {
    node: () => status.string("node"),
    cluster: () => status.string("cluster"),
    role: () => status.string("role"),
    term: () => status.count("term"),
    leader: () => status.string("leader"),
    commit: () => status.count("commit"),
    applied: () => status.count("applied"),
    snapshot: () => status.count("snapshot"),
    epoch: () => status.count("epoch"),
    keys: () => status.count("keys"),
    bytes: () => status.count("bytes"),
    members: () => {
      for (const member of status.objects("members")) {
        member.string("id");
        member.boolean("voter");
        member.count("match");
      }
    },
    reads: () => status.value.reads === undefined || status.count("reads"),
    writes: () => status.value.writes === undefined || status.count("writes"),
  };
  for (const check of Object.values(fields)) check();
}
