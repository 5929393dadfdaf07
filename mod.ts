/**
 * koi: a sharded, Raft-replicated key-value store for Deno.
 *
 * This module is the library face of koi: the configuration loader and types today; the
 * routing client and the CARP functions as they land.
 *
 * @module
 */
export {};
