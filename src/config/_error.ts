/** The error every configuration problem is reported with. */

/**
 * A configuration problem: a bad field, an unreadable file, a TOML syntax error or an
 * unknown node id. `field` is the TOML path of the culprit (`clusters[1].nodes[0].raft`),
 * `"config"` for the file as a whole, `"id"` for a node id looked up by `findNode`.
 */
export class ConfigError extends Error {
  /** The TOML path of the bad field, or `"config"` for the file as a whole. */
  readonly field: string;
  /** Every problem found (this error alone, unless it combines several). */
  readonly problems: readonly ConfigError[];

  /** Creates an error about `field`; `message` names the field and the bad value. */
  constructor(
    field: string,
    message: string,
    options?: ErrorOptions & { problems?: readonly ConfigError[] },
  ) {
    super(message, options);
    this.name = "ConfigError";
    this.field = field;
    this.problems = options?.problems ?? [this];
  }

  /** One error listing several problems, one per line; `field` is the first one's. */
  static combine(problems: readonly ConfigError[]): ConfigError {
    const lines = problems.map((p) => `  - ${p.message}`).join("\n");
    return new ConfigError(
      problems[0].field,
      `Invalid config: ${problems.length} problems:\n${lines}`,
      { problems },
    );
  }
}
