/**
 * What every `koi` mode shares: the usage error (exit code 2), log level parsing, the
 * console logging setup, and whether a progress bar may draw.
 *
 * @module
 */
import { configure, getConsoleSink, jsonLinesFormatter, type LogLevel } from "@logtape/logtape";

/** A usage error: the message names the bad flag; exit code 2. */
export class UsageError extends Error {
  /** @param message names the bad flag or value */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** Whether `error` is one of node:util parseArgs's errors (unknown flag, missing value). */
export function isParseArgsError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return error instanceof TypeError && typeof code === "string" &&
    code.startsWith("ERR_PARSE_ARGS");
}

/** The log levels `--log-level` accepts. */
export const LOG_LEVELS = ["trace", "debug", "info", "warning", "error", "fatal"] as const;

/** Parses `--log-level` case-insensitively (`warn` = `warning`); the default is `warning`. */
export function parseLogLevel(given: string | undefined): LogLevel {
  const lower = (given ?? "warning").toLowerCase();
  const level = lower === "warn" ? "warning" : lower;
  if (!(LOG_LEVELS as readonly string[]).includes(level)) {
    throw new UsageError(`Invalid --log-level: ${level}; expected one of ${LOG_LEVELS.join(", ")}`);
  }
  return level as LogLevel;
}

/**
 * JSON lines on the console at `level`, except the `["koi", "lifecycle"]` lines (ready,
 * stopped, restarted), which print at `info` unless the level is `error` or `fatal`.
 */
export async function configureLogging(level: LogLevel): Promise<void> {
  await configure({
    sinks: { console: getConsoleSink({ formatter: jsonLinesFormatter }) },
    loggers: [
      { category: ["koi"], lowestLevel: level, sinks: ["console"] },
      {
        category: ["koi", "lifecycle"],
        lowestLevel: level === "error" || level === "fatal" ? level : "info",
        sinks: ["console"],
        parentSinks: "override",
      },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["console"] },
    ],
  });
}

/** Whether a progress bar may draw: stdout and stderr are terminals, and not in CI. */
export function progressAllowed(): boolean {
  if (!Deno.stdout.isTerminal() || !Deno.stderr.isTerminal()) return false;
  try {
    return !Deno.env.get("CI");
  } catch {
    return false; // no env permission: stay quiet
  }
}

/**
 * Signals closer than this to the first one are the same request to stop: a Ctrl-C reaches
 * every process of the terminal's group, and `deno task` forwards the signal it gets, so one
 * keypress can arrive twice. Only a later one means "stop now".
 */
export const SECOND_SIGNAL_AFTER_MS = 500;
