/**
 * A small store for the transaction tests: numbered accounts keyed by bytes, each with a value
 * and a versionstamp; mutations set or add to a value (an add on a missing key is refused).
 *
 * @module
 */
import { keyString } from "./_keys.ts";
import type { TxnMutationShape, TxnStore } from "./_participant.ts";
import type { TxnCheck, TxnRefusal } from "./_types.ts";

/** A mutation of the test store. */
export interface TestMutation {
  /** The key. */
  readonly key: Uint8Array;
  /** Set to this value, or add this to the stored one. */
  readonly op: "set" | "add";
  /** The operand. */
  readonly n: number;
}

/** How the participant sees a {@linkcode TestMutation}. */
export const TEST_SHAPE: TxnMutationShape<TestMutation> = {
  writeKey: (m) => m.key,
  bytes: (m) => m.key.length + 8,
};

/** The key of account `n`. */
export function acct(n: number): Uint8Array {
  return new TextEncoder().encode(`acct/${n}`);
}

/** The test store. */
export class TestStore implements TxnStore<TestMutation> {
  /** key -> value and versionstamp. */
  readonly data = new Map<string, { n: number; vs: number }>();

  /** The value of `key`, or undefined. */
  value(key: Uint8Array): number | undefined {
    return this.data.get(keyString(key))?.n;
  }

  /** The versionstamp of `key` (0: absent). */
  vsOf(key: Uint8Array): number {
    return this.data.get(keyString(key))?.vs ?? 0;
  }

  /** Checks hold and adds find their keys. */
  evaluate(
    checks: readonly TxnCheck[],
    mutations: readonly TestMutation[],
  ): TxnRefusal | undefined {
    for (let i = 0; i < checks.length; i++) {
      if (this.vsOf(checks[i].key) !== checks[i].vs) return { code: "check_failed", check: i };
    }
    for (let i = 0; i < mutations.length; i++) {
      const m = mutations[i];
      if (m.op === "add" && this.value(m.key) === undefined) {
        return { code: "invalid", mutation: i, message: "no such account" };
      }
    }
    return undefined;
  }

  /** Applies in order at `vs`. */
  apply(mutations: readonly TestMutation[], vs: number): void {
    for (const m of mutations) {
      const old = this.value(m.key) ?? 0;
      this.data.set(keyString(m.key), { n: m.op === "set" ? m.n : old + m.n, vs });
    }
  }
}
