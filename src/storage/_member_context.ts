/**
 * The context of a Raft config entry: the addresses of the members it adds, so that every
 * member learns them from the log (and a snapshot keeps them).
 *
 * @module
 */
import { decode, encode } from "./_msgpack.ts";

/** The addresses of one member, carried in config entries so every node learns them. */
export interface MemberAddress {
  /** Raft TCP address, `host:port`. */
  readonly raft: string;
  /** HTTP address, `host:port`. */
  readonly http: string;
}

/** Encodes the context of a config entry: the addresses of the members it adds. */
export function encodeMemberContext(
  addresses: Readonly<Record<string, MemberAddress>>,
): Uint8Array {
  return encode(addresses);
}

/** Decodes a config entry's context; an empty or foreign context names no address. */
export function decodeMemberContext(data: Uint8Array): Record<string, MemberAddress> {
  if (data.length === 0) return {};
  let v: unknown;
  try {
    v = decode(data);
  } catch {
    return {}; // a foreign context names no address (and must not stop the node)
  }
  const out: Record<string, MemberAddress> = {};
  if (typeof v !== "object" || v === null) return out;
  for (const [id, a] of Object.entries(v as Record<string, unknown>)) {
    const addr = a as Partial<MemberAddress>;
    if (typeof addr?.raft === "string" && typeof addr?.http === "string") {
      out[id] = { raft: addr.raft, http: addr.http };
    }
  }
  return out;
}
