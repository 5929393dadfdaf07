/**
 * An open-loop write generator: PUTs arrive at a fixed rate whether or not earlier ones were
 * answered, as from many independent clients. Each goes out on a raw HTTP/1.1 connection
 * with fewer than `depthMax` requests waiting (pipelined: the cheapest way for one process
 * to offer tens of thousands of requests per second); when every connection is that full,
 * a new one is opened, up to `connections`; beyond that the arrival is counted as not sent.
 * A connection the server closes is replaced; what was sent on it and not answered counts as
 * unanswered (outcome unknown).
 *
 * @module
 */

/** Options of {@linkcode openLoopWrites}. */
export interface OpenLoopOptions {
  /** The node's HTTP address. */
  readonly hostname: string;
  readonly port: number;
  /** Requests per second to send, over all connections. */
  readonly ratePerSec: number;
  /** How long to send. */
  readonly seconds: number;
  /** Connections to open at most. */
  readonly connections: number;
  /** Requests waiting on one connection at most (the server closes one with more than 16). */
  readonly depthMax: number;
  /** Bytes of each value. */
  readonly valueBytes: number;
  /** Keys are `<prefix>-<n>`. */
  readonly keyPrefix: string;
  /** Called about every 100 ms while sending (e.g. to sample memory). */
  readonly onTick?: () => void;
}

/** What {@linkcode openLoopWrites} saw. */
export interface OpenLoopResult {
  /** Requests written to a socket. */
  sent: number;
  /** Arrivals not sent: every connection was full. */
  notSent: number;
  /** Answers by status. */
  statuses: Record<string, number>;
  /** 503 answers with `retry-after`. */
  retryAfter: number;
  /** Error codes of non-200 answers. */
  codes: Record<string, number>;
  /** Sent but never answered (the server closed the connection first). */
  unanswered: number;
  /** Connections the server closed while requests waited on them. */
  closedByServer: number;
  /** Latencies of the 200 answers, ms, sorted. */
  okLatencyMs: number[];
  /** Latencies of the 503 answers, ms, sorted. */
  refusedLatencyMs: number[];
  /** Keys answered 200. */
  acknowledged: string[];
  /** Seconds it sent for. */
  elapsedSeconds: number;
}

const ENCODER = new TextEncoder();
const DECODER = new TextDecoder();
/** How long answers still owed are awaited once sending stopped. */
const DRAIN_MS = 15_000;

interface Waiting {
  key: string;
  sentAt: number;
}

interface Lane {
  conn: Deno.TcpConn;
  waiting: Waiting[];
  open: boolean;
  /** Requests of this tick, written together. */
  batch: Uint8Array[];
  batchBytes: number;
  reader: Promise<void>;
}

/** Sends PUTs open-loop as described by `options`; resolves once the answers are in. */
export async function openLoopWrites(options: OpenLoopOptions): Promise<OpenLoopResult> {
  const result: OpenLoopResult = {
    sent: 0,
    notSent: 0,
    statuses: {},
    retryAfter: 0,
    codes: {},
    unanswered: 0,
    closedByServer: 0,
    okLatencyMs: [],
    refusedLatencyMs: [],
    acknowledged: [],
    elapsedSeconds: 0,
  };
  const value = new Uint8Array(options.valueBytes).fill(118);
  const lanes: Lane[] = [];
  const finished: Promise<void>[] = [];
  let opening = 0;
  const open = async () => {
    opening++;
    try {
      const conn = await Deno.connect({ hostname: options.hostname, port: options.port });
      const lane: Lane = {
        conn,
        waiting: [],
        open: true,
        batch: [],
        batchBytes: 0,
        reader: Promise.resolve(),
      };
      lane.reader = readAnswers(conn, lane.waiting, result).finally(() => {
        lane.open = false;
        if (lane.waiting.length > 0) result.closedByServer++;
      });
      lanes.push(lane);
    } catch {
      // refused or out of descriptors: the next tick tries again
    } finally {
      opening--;
    }
  };
  const start = performance.now();
  const end = start + options.seconds * 1000;
  let arrived = 0;
  let lastTick = start;
  let next = 0;
  while (performance.now() < end) {
    const now = performance.now();
    // Closed lanes leave the pool; their unanswered requests are counted once they end.
    for (let i = lanes.length - 1; i >= 0; i--) {
      if (!lanes[i].open) finished.push(finish(lanes.splice(i, 1)[0], result));
    }
    const owed = Math.floor(((now - start) / 1000) * options.ratePerSec) - arrived;
    for (let i = 0; i < owed; i++) {
      arrived++;
      const lane = roomyLane(lanes, options.depthMax, next++);
      if (lane === undefined) {
        result.notSent++;
        continue;
      }
      const key = `${options.keyPrefix}-${arrived}`;
      lane.waiting.push({ key, sentAt: now });
      const head = ENCODER.encode(
        `PUT /v1/kv/${key} HTTP/1.1\r\nhost: koi\r\ncontent-length: ${value.length}\r\n\r\n`,
      );
      lane.batch.push(head, value);
      lane.batchBytes += head.length + value.length;
      result.sent++;
    }
    for (const lane of lanes) {
      if (lane.batch.length === 0) continue;
      const bytes = new Uint8Array(lane.batchBytes);
      let at = 0;
      for (const part of lane.batch) {
        bytes.set(part, at);
        at += part.length;
      }
      lane.batch = [];
      lane.batchBytes = 0;
      void writeAll(lane.conn, bytes);
    }
    // Every connection full: open more (a few at a time) up to the cap.
    const full = lanes.every((l) => l.waiting.length >= options.depthMax);
    if (full && lanes.length + opening < options.connections) {
      const more = Math.min(16, options.connections - lanes.length - opening);
      for (let i = 0; i < more; i++) void open();
    }
    if (now - lastTick >= 100) {
      lastTick = now;
      options.onTick?.();
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  result.elapsedSeconds = (performance.now() - start) / 1000;
  // No half-close: a server may drop what it has not answered when its client's side ends.
  for (const lane of lanes.splice(0)) finished.push(finish(lane, result));
  await Promise.all(finished);
  result.okLatencyMs.sort((a, b) => a - b);
  result.refusedLatencyMs.sort((a, b) => a - b);
  return result;
}

/** The next open lane (round robin from `from`) with room, if any. */
function roomyLane(lanes: readonly Lane[], depthMax: number, from: number): Lane | undefined {
  for (let i = 0; i < lanes.length; i++) {
    const lane = lanes[(from + i) % lanes.length];
    if (lane.open && lane.waiting.length < depthMax) return lane;
  }
  return undefined;
}

/** Waits (bounded) for a lane's owed answers, then counts what never came. */
async function finish(lane: Lane, result: OpenLoopResult): Promise<void> {
  const deadline = performance.now() + DRAIN_MS;
  while (lane.open && lane.waiting.length > 0 && performance.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
  }
  closeQuietly(lane.conn);
  await lane.reader;
  result.unanswered += lane.waiting.length;
  lane.waiting.length = 0;
  closeQuietly(lane.conn);
}

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch { /* closed */ }
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  try {
    for (let at = 0; at < bytes.length;) at += await conn.write(bytes.subarray(at));
  } catch { /* the server closed it: the reader sees the end */ }
}

/** Parses answers off `conn` in order (every koi answer has a content-length). */
async function readAnswers(
  conn: Deno.Conn,
  waiting: Waiting[],
  result: OpenLoopResult,
): Promise<void> {
  const buffer = new Uint8Array(1 << 16);
  let text = "";
  for (;;) {
    const n = await conn.read(buffer).catch(() => null);
    if (n === null) return;
    text += DECODER.decode(buffer.subarray(0, n), { stream: true });
    for (;;) {
      const headEnd = text.indexOf("\r\n\r\n");
      if (headEnd < 0) break;
      const head = text.slice(0, headEnd);
      const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
      if (text.length < headEnd + 4 + length) break;
      const body = text.slice(headEnd + 4, headEnd + 4 + length);
      text = text.slice(headEnd + 4 + length);
      const status = head.slice(9, 12);
      const w = waiting.shift();
      result.statuses[status] = (result.statuses[status] ?? 0) + 1;
      const ms = w === undefined ? 0 : performance.now() - w.sentAt;
      if (status === "200") {
        if (w !== undefined) {
          result.acknowledged.push(w.key);
          result.okLatencyMs.push(ms);
        }
        continue;
      }
      if (status === "503") {
        result.refusedLatencyMs.push(ms);
        if (/\r\nretry-after:/i.test(head)) result.retryAfter++;
      }
      const code = /"code":"([a-z_]+)"/.exec(body)?.[1] ?? "?";
      result.codes[code] = (result.codes[code] ?? 0) + 1;
    }
  }
}
