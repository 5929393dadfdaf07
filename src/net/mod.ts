/**
 * The Raft peer protocol: raw TCP between the members of a cluster, one length-prefixed
 * msgpack frame per message (u32 big-endian body length, then the body).
 *
 * - {@linkcode PeerTransport} dials one outbound connection per peer and receives on the
 *   connections its peers dialed: two TCP connections per pair of nodes, one per direction.
 * - The first frame is a hello naming cluster, sender and receiver; with a cluster secret the
 *   listener first sends a nonce and the hello carries an HMAC-SHA256 over it.
 * - Every frame has a size limit; bad lengths, bodies, messages or hellos close the connection
 *   with a logged reason and never crash the node.
 *
 * @example
 * ```ts
 * import { PeerTransport } from "./mod.ts";
 * import { parseHostPort } from "../config/mod.ts";
 *
 * const transport = new PeerTransport({
 *   clusterId: "a",
 *   nodeId: "a1",
 *   listen: parseHostPort("127.0.0.1:7101", "raft"),
 *   peers: new Map([["a2", parseHostPort("127.0.0.1:7102", "raft")]]),
 *   onMessage: (m) => console.log(m.type, "from", m.from),
 * });
 * await transport.start();
 * transport.send([{ type: "heartbeatResp", from: "a1", to: "a2", term: 1, readSeq: 0 }]);
 * await transport.close();
 * ```
 *
 * @module
 */

export {
  HANDSHAKES_PENDING_MAX,
  HELLO_TIMEOUT_MS,
  PeerTransport,
  RECONNECT_DELAY_MS,
  SEND_QUEUE_BYTES_MAX,
  type TransportOptions,
} from "./transport.ts";
export {
  decodeFrameBody,
  encodeFrame,
  FRAME_BYTES_MAX,
  FRAME_HEADER_BYTES,
  FrameDecoder,
  FrameTooLargeError,
  MalformedFrameError,
} from "./_frame.ts";
export { decodeMessage, encodeMessage, MalformedMessageError } from "./_codec.ts";
export { HANDSHAKE_TIMEOUT_MS, HandshakeError, REFUSAL_REASON } from "./_hello.ts";
export { HELLO_FRAME_BYTES_MAX } from "./_connection.ts";
export {
  type LogFunction,
  type LogLevel,
  type PeerState,
  THROTTLED_LOG_INTERVAL_MS,
  TRANSPORT_COUNTERS,
  type TransportCounter,
} from "./_context.ts";
