/** The error every invalid CARP table is reported with. */

/**
 * A CARP table that cannot be built: an unknown scheme, a bad epoch, a bad or duplicate
 * member id, a load factor that is not finite and > 0, or two member ids whose hashes
 * collide. `ids` names the members involved (empty when the problem is not about one).
 */
export class CarpConfigError extends Error {
  /** The member ids the problem is about, in the order the message names them. */
  readonly ids: readonly string[];

  /** Creates the error; `message` names the bad value, `ids` the members involved. */
  constructor(message: string, ids: readonly string[] = [], options?: ErrorOptions) {
    super(message, options);
    this.name = "CarpConfigError";
    this.ids = Object.freeze([...ids]);
  }
}
