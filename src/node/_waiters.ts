/** Promises that a later event settles, each with a deadline (requests never wait forever). */
import { RequestTimeoutError } from "./errors.ts";

/** One waiting caller. */
export interface Waiter<T> {
  /** Settles with a value. */
  resolve(value: T): void;
  /** Settles with an error. */
  reject(error: unknown): void;
  /** Its deadline. */
  timer: ReturnType<typeof setTimeout>;
}

/** Waits until `register`'s waiter is settled, or rejects after `timeoutMs` naming `what`. */
export function wait<T>(
  register: (w: Waiter<T>) => void,
  what: string,
  timeoutMs: number,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const w: Waiter<T> = {
      resolve,
      reject,
      timer: setTimeout(() => {
        reject(new RequestTimeoutError(`${what} did not complete in ${timeoutMs} ms`));
      }, timeoutMs),
    };
    register(w);
  });
}

/** Settles a waiter (with `error` when given) and clears its deadline. */
export function settle<T>(w: Waiter<T>, error: unknown, value?: T): void {
  clearTimeout(w.timer);
  if (error !== undefined) w.reject(error);
  else w.resolve(value as T);
}
