/**
 * The version of koi, as in deno.json (a test keeps the two equal).
 *
 * @module
 */

/** The version of this program (as in deno.json). */
export const KOI_VERSION = "0.1.0";
