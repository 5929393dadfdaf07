/** Small async primitives for the connection loops: a wake-up signal and a cancellable sleep. */

/** Wakes one waiting loop. A notify with no waiter is remembered, so no wake-up is lost. */
export class Signal {
  #resolve: (() => void) | undefined;
  #pending = false;

  /** Wakes the waiter, or the next one when nobody waits yet. */
  notify(): void {
    const resolve = this.#resolve;
    this.#resolve = undefined;
    if (resolve === undefined) this.#pending = true;
    else resolve();
  }

  /** Resolves at the next notify (at once when one is pending). One waiter at a time. */
  wait(): Promise<void> {
    if (this.#pending) {
      this.#pending = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.#resolve = resolve);
  }
}

/** A sleep that {@linkcode Sleeper.cancel} ends early (at close: no timer outlives its owner). */
export class Sleeper {
  #timer: ReturnType<typeof setTimeout> | undefined;
  #resolve: (() => void) | undefined;

  /** Resolves after `ms`, or at once when cancelled. One sleep at a time. */
  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.#resolve = resolve;
      this.#timer = setTimeout(() => this.cancel(), ms);
    });
  }

  /** Ends the current sleep now; a no-op when none runs. */
  cancel(): void {
    clearTimeout(this.#timer);
    const resolve = this.#resolve;
    this.#timer = undefined;
    this.#resolve = undefined;
    resolve?.();
  }
}

/** The message of an unknown thrown value. */
export function describeError(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}
