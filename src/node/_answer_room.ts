/**
 * The refusal of an answer that would pass the node's bound of answers not yet taken by their
 * clients (src/http/_answer_bytes.ts): `503 overloaded`, before it is built or relayed.
 *
 * @module
 */
import type { AnswerBytes } from "../http/server.ts";
import { OverloadedError } from "./errors.ts";

/** The error for `what` (an answer of `bytes`) that does not fit in `answers`. */
export function noRoomError(answers: AnswerBytes, bytes: number, what: string): OverloadedError {
  return new OverloadedError(
    `${what} (${bytes} bytes) would pass the node's bound of answers not yet taken by their ` +
      `clients: ${answers.held} of ${answers.max} bytes are held; retry later`,
  );
}
