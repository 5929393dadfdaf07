/**
 * The progress bar of the benchmarks: cli-progress's single bar on stderr, typed (the
 * package ships no types). Whether to draw one at all is the command line's decision.
 *
 * @module
 */
import process from "node:process";
import cliProgress from "cli-progress";

/** The part of cli-progress's SingleBar the benchmarks use. */
export interface ProgressBar {
  /** Shows the bar at `value` of `total`; `payload` fills the format's other `{tokens}`. */
  start(total: number, value: number, payload?: Record<string, unknown>): void;
  /** Moves the bar to `value`, with new payload tokens. */
  update(value: number, payload?: Record<string, unknown>): void;
  /** Changes the total. */
  setTotal(total: number): void;
  /** Moves the bar by `step`. */
  increment(step: number): void;
  /** Draws the last state and leaves the line. */
  stop(): void;
}

/**
 * A bar on stderr drawn with `format` (cli-progress tokens: `{bar}`, `{percentage}`,
 * `{eta}`, and any payload token). Not started: call `start`.
 */
export function progressBar(format: string): ProgressBar {
  const { SingleBar, Presets } = cliProgress as unknown as {
    SingleBar: new (options: object, preset: object) => ProgressBar;
    Presets: { shades_classic: object };
  };
  return new SingleBar({ format, stream: process.stderr }, Presets.shades_classic);
}
