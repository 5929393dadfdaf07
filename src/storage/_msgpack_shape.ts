/**
 * A look at the shape of msgpack bytes before they are decoded: how deeply containers nest and
 * how many values there are, found by walking the headers without building anything. Decoding
 * a body of nested one-element arrays allocates an object per byte (2 MiB took 0.7 s and
 * stalled a leader past its election timeout); the walk costs a few ms and lets such a body be
 * refused first.
 *
 * @module
 */

/** The shape of a msgpack value. */
export interface MsgpackShape {
  /** Deepest nesting of arrays and maps (a scalar is 0). */
  readonly depth: number;
  /** Values in all (containers, their elements, map keys and values). */
  readonly values: number;
}

/**
 * The shape of the one msgpack value `bytes` holds, or undefined when they are not exactly one
 * well-formed value or exceed `limits` (the walk stops at once).
 */
export function msgpackShape(
  bytes: Uint8Array,
  limits: { depth: number; values: number },
): MsgpackShape | undefined {
  try {
    return walk(bytes, limits);
  } catch (error) {
    if (error === TRUNCATED) return undefined;
    throw error;
  }
}

const TRUNCATED = new Error("truncated msgpack");

function walk(
  bytes: Uint8Array,
  limits: { depth: number; values: number },
): MsgpackShape | undefined {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // Per open container, how many values it still holds.
  const open: number[] = [];
  let at = 0;
  let values = 0;
  let depth = 0;
  const need = (n: number) => at + n <= bytes.length;
  for (;;) {
    if (!need(1)) return undefined;
    const b = bytes[at++];
    values++;
    if (values > limits.values) return undefined;
    let skip = 0;
    let children = -1;
    if (b <= 0x7f || b >= 0xe0 || b === 0xc0 || b === 0xc2 || b === 0xc3) skip = 0;
    else if (b >= 0x80 && b <= 0x8f) children = 2 * (b & 0x0f);
    else if (b >= 0x90 && b <= 0x9f) children = b & 0x0f;
    else if (b >= 0xa0 && b <= 0xbf) skip = b & 0x1f;
    else {
      const len = (n: number) => {
        if (!need(n)) throw TRUNCATED;
        const v = n === 1 ? view.getUint8(at) : n === 2 ? view.getUint16(at) : view.getUint32(at);
        at += n;
        return v;
      };
      switch (b) {
        case 0xc4:
        case 0xd9:
          skip = len(1);
          break;
        case 0xc5:
        case 0xda:
          skip = len(2);
          break;
        case 0xc6:
        case 0xdb:
          skip = len(4);
          break;
        case 0xca:
          skip = 4;
          break;
        case 0xcb:
          skip = 8;
          break;
        case 0xcc:
        case 0xd0:
          skip = 1;
          break;
        case 0xcd:
        case 0xd1:
          skip = 2;
          break;
        case 0xce:
        case 0xd2:
          skip = 4;
          break;
        case 0xcf:
        case 0xd3:
          skip = 8;
          break;
        case 0xd4:
          skip = 2;
          break;
        case 0xd5:
          skip = 3;
          break;
        case 0xd6:
          skip = 5;
          break;
        case 0xd7:
          skip = 9;
          break;
        case 0xd8:
          skip = 17;
          break;
        case 0xc7:
          skip = len(1) + 1;
          break;
        case 0xc8:
          skip = len(2) + 1;
          break;
        case 0xc9:
          skip = len(4) + 1;
          break;
        case 0xdc:
          children = len(2);
          break;
        case 0xdd:
          children = len(4);
          break;
        case 0xde:
          children = len(2) * 2;
          break;
        case 0xdf:
          children = len(4) * 2;
          break;
        default:
          return undefined; // 0xc1: never used
      }
    }
    if (children >= 0) {
      // A container: its values follow (or it is empty).
      if (children > limits.values) return undefined;
      if (children > 0) {
        open.push(children);
        depth = Math.max(depth, open.length);
        if (depth > limits.depth) return undefined;
        continue;
      }
    } else {
      if (!need(skip)) return undefined;
      at += skip;
    }
    // One value ended: close every container it completed.
    while (open.length > 0) {
      open[open.length - 1]--;
      if (open[open.length - 1] > 0) break;
      open.pop();
    }
    if (open.length === 0) return at === bytes.length ? { depth, values } : undefined;
  }
}
