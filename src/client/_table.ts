/** The routing table the admin serves (`GET /v1/carp`), checked and turned into a CarpTable. */

import { CARP_SCHEMES, CarpTable } from "../carp/mod.ts";
import type { CarpScheme } from "../carp/mod.ts";
import { ConfigError, parseHostPort } from "../config/mod.ts";
import { KoiError } from "./errors.ts";

/** One node of a cluster, as the admin lists it. */
export interface NodeInfo {
  /** The node id (`clusters.nodes.id` of config.toml). */
  readonly id: string;
  /** The node's HTTP address, `host:port`. */
  readonly http: string;
  /**
   * The node's base URL: the table's `url` (`https://host:port` when the deployment runs
   * TLS), or `http://<http>` from an admin that sends none.
   */
  readonly url: string;
}

/** One cluster of the routing table. */
export interface ClusterInfo {
  /** The cluster id: the CARP member name. */
  readonly id: string;
  /** The cluster's CARP load factor. */
  readonly loadFactor: number;
  /**
   * During a move (docs/resharding.md): the table drains this cluster, so no key is routed
   * to it; a node may still name it as the owner of a key that has not moved yet.
   */
  readonly draining: boolean;
  /** The leader the admin knew when the table was fetched; `""` when it knew none. */
  readonly leader: string;
  /** The cluster's nodes, in config order. */
  readonly nodes: readonly NodeInfo[];
}

/** The routing table a client holds: the admin's answer and the CARP table built from it. */
export interface RoutingTable {
  /** The routing epoch (`[routing] epoch` of config.toml). */
  readonly epoch: number;
  /** The CARP scheme. */
  readonly scheme: CarpScheme;
  /** The clusters, in config order. */
  readonly clusters: readonly ClusterInfo[];
  /**
   * The CARP table of the clusters not draining: `carp.owner(key)` is the id of the owning
   * cluster (during a move: once the key has moved; until then its node redirects).
   */
  readonly carp: CarpTable;
  /** Whether keys move to this table now (nodes may answer `421` with the owner). */
  readonly moving: boolean;
}

const ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/** Checks the admin's `/v1/carp` answer; throws `KoiError("bad_response")` naming the flaw. */
export function parseRoutingTable(json: unknown, source: string): RoutingTable {
  const bad = (what: string, cause?: unknown): never => {
    throw new KoiError(
      "bad_response",
      `The admin ${source} answered an invalid routing table: ${what}`,
      cause === undefined ? {} : { cause },
    );
  };
  const address = (http: unknown, where: string): string => {
    if (typeof http !== "string") return bad(`${where} ${shown(http)}`);
    const problem = hostPortProblem(http, where);
    return problem === undefined ? http : bad(problem);
  };
  if (!isObject(json)) return bad("not a JSON object");
  const { epoch, scheme, clusters } = json;
  if (!Number.isSafeInteger(epoch) || (epoch as number) < 1) {
    return bad(`epoch ${shown(epoch)}`);
  }
  if (typeof scheme !== "string" || !(CARP_SCHEMES as readonly string[]).includes(scheme)) {
    return bad(`scheme ${shown(scheme)}`);
  }
  if (!Array.isArray(clusters) || clusters.length === 0) return bad("no clusters");
  const seenNodes = new Set<string>();
  const parsed = clusters.map((c, i): ClusterInfo => {
    if (!isObject(c)) return bad(`clusters[${i}] is not an object`);
    if (typeof c.id !== "string" || !ID.test(c.id)) {
      return bad(`clusters[${i}].id ${shown(c.id)}`);
    }
    if (typeof c.loadFactor !== "number") {
      return bad(`clusters[${i}].loadFactor ${shown(c.loadFactor)}`);
    }
    const draining = c.draining ?? false;
    if (typeof draining !== "boolean") return bad(`clusters[${i}].draining ${shown(draining)}`);
    const leader = c.leader ?? "";
    if (typeof leader !== "string") return bad(`clusters[${i}].leader ${shown(leader)}`);
    if (!Array.isArray(c.nodes) || c.nodes.length === 0) {
      return bad(`clusters[${i}] (${c.id}) has no nodes`);
    }
    const nodes = c.nodes.map((n, j): NodeInfo => {
      const where = `clusters[${i}].nodes[${j}]`;
      if (!isObject(n)) return bad(`${where} is not an object`);
      if (typeof n.id !== "string" || !ID.test(n.id)) {
        return bad(`${where}.id ${shown(n.id)}`);
      }
      if (seenNodes.has(n.id)) return bad(`node id ${n.id} is listed twice`);
      seenNodes.add(n.id);
      const http = address(n.http, `${where}.http`);
      return Object.freeze({ id: n.id, http, url: baseUrl(n.url, http, `${where}.url`) });
    });
    return Object.freeze({
      id: c.id,
      loadFactor: c.loadFactor,
      draining,
      leader,
      nodes: Object.freeze(nodes),
    });
  });
  let carp: CarpTable;
  try {
    carp = new CarpTable({
      scheme: scheme as CarpScheme,
      epoch: epoch as number,
      members: parsed.filter((c) => !c.draining).map((c) => ({
        id: c.id,
        loadFactor: c.loadFactor,
      })),
    });
  } catch (error) {
    return bad(error instanceof Error ? error.message : String(error), error);
  }
  const moving = json.moving ?? false;
  if (typeof moving !== "boolean") return bad(`moving ${shown(moving)}`);
  return Object.freeze({
    epoch: epoch as number,
    scheme: scheme as CarpScheme,
    clusters: Object.freeze(parsed),
    carp,
    moving,
  });
}

/**
 * A node's base URL from the table's `url` (absent: `http://<http>`): `http:` or `https:`,
 * for the same `host:port` as `http` (a table cannot send a client elsewhere than it says),
 * nothing after the authority. Throws `bad_response` through `bad` otherwise.
 */
function baseUrl(url: unknown, http: string, where: string): string {
  const plain = `http://${http}`;
  if (url === undefined) return plain;
  let parsed: URL | undefined;
  try {
    if (typeof url === "string") parsed = new URL(url);
  } catch { /* reported below */ }
  const same = parsed !== undefined && new URL(plain).host === parsed.host &&
    (parsed.protocol === "http:" || parsed.protocol === "https:") &&
    (parsed.pathname === "/" || parsed.pathname === "") && parsed.search === "" &&
    parsed.hash === "" && parsed.username === "" && parsed.password === "";
  if (!same) {
    throw new KoiError(
      "bad_response",
      `The admin answered an invalid routing table: ${where} ${
        shown(url)
      } is not http:// or https:// ${http}`,
    );
  }
  return `${parsed!.protocol}//${parsed!.host}`;
}

/** Whether `value` is a plain JSON object. */
export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Why `http` is not a node address the client can send to (`host:port`: an IPv4 address, a
 * bracketed IPv6 address or a hostname, and a port of 1..65535), or undefined when it is.
 */
function hostPortProblem(http: string, where: string): string | undefined {
  try {
    parseHostPort(http, where);
    new URL(`http://${http}/`);
    return undefined;
  } catch (error) {
    if (!(error instanceof ConfigError)) return `${where} ${shown(http)} is not a URL host`;
    return error.message.replace(/^Invalid config field /, "");
  }
}

/** `value` as JSON for a message, cut short when long. */
export function shown(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 80)}… (${text.length} chars)` : text;
}
