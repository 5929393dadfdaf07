/**
 * TLS settings of config.toml: the `[tls]` table (the deployment's CA, and a certificate and
 * key every node and the admin use unless they name their own) and the per-node and admin
 * `tls_cert` / `tls_key` overrides. Validation here is pure (paths resolved, nothing read);
 * {@linkcode loadTlsFiles} reads and checks the PEM files when a node or the admin starts.
 *
 * @module
 */

import { createPrivateKey, type KeyObject, X509Certificate } from "node:crypto";
import { resolve } from "node:path";
import { ConfigError } from "./_error.ts";
import type { TlsFiles, TlsMaterial } from "./_schema.ts";
import { show } from "./_show.ts";

/** The fields of the `[tls]` table. */
export const TLS_FIELDS: readonly string[] = ["ca", "cert", "key"];

/** What `[tls]` sets: the CA, and the default certificate and key (with their fields). */
export interface TlsDefaults {
  readonly ca: string;
  readonly caField: string;
  readonly pair?: { cert: string; key: string; certField: string; keyField: string };
}

/** Largest PEM file read, in bytes: a certificate chain or key is a few KiB. */
export const TLS_FILE_BYTES_MAX = 1 << 20;

type Table = Record<string, unknown>;

function fail(field: string, problem: string): never {
  throw new ConfigError(field, `Invalid config field ${field}: ${problem}`);
}

function readPath(value: unknown, field: string, baseDir: string): string {
  const rule = "must be a non-empty path to a PEM file (relative to the config file's folder)";
  if (value === undefined) fail(field, `missing; it ${rule}`);
  if (typeof value !== "string" || value.trim() === "" || value.includes("\0")) {
    fail(field, `${rule}, got ${show(value)}`);
  }
  return resolve(baseDir, value);
}

/**
 * The certificate and key of `table` (`certKey`/`keyKey`, e.g. `tls_cert`/`tls_key`), or
 * undefined when it sets neither. One without the other is an error naming the missing one.
 */
function readPair(
  table: Table,
  field: string,
  options: { certKey: string; keyKey: string; baseDir: string },
): TlsDefaults["pair"] {
  const { certKey, keyKey, baseDir } = options;
  const at = (k: string) => field === "" ? k : `${field}.${k}`;
  if (table[certKey] === undefined && table[keyKey] === undefined) return undefined;
  if (table[keyKey] === undefined) {
    fail(at(keyKey), `missing; ${at(certKey)} is set, so its private key must be too`);
  }
  if (table[certKey] === undefined) {
    fail(at(certKey), `missing; ${at(keyKey)} is set, so its certificate must be too`);
  }
  return {
    cert: readPath(table[certKey], at(certKey), baseDir),
    key: readPath(table[keyKey], at(keyKey), baseDir),
    certField: at(certKey),
    keyField: at(keyKey),
  };
}

/** Reads `[tls]` (already checked to be a table with known fields); undefined when absent. */
export function readTlsTable(table: Table | undefined, baseDir: string): TlsDefaults | undefined {
  if (table === undefined) return undefined;
  const ca = readPath(table.ca, "tls.ca", baseDir);
  const pair = readPair(table, "tls", { certKey: "cert", keyKey: "key", baseDir });
  return { ca, caField: "tls.ca", ...(pair === undefined ? {} : { pair }) };
}

/**
 * The TLS files of one node or the admin at `field` (its own `tls_cert`/`tls_key`, else the
 * `[tls]` ones), or undefined without `[tls]`. Own files without `[tls]` are an error: there
 * would be no CA to verify the other side with.
 */
export function readOwnTls(
  table: Table,
  field: string,
  options: { tls: TlsDefaults | undefined | null; baseDir: string },
): TlsFiles | undefined {
  const { tls, baseDir } = options;
  const own = readPair(table, field, { certKey: "tls_cert", keyKey: "tls_key", baseDir });
  if (tls === null) return undefined; // [tls] is invalid: that error is the one to fix
  if (tls === undefined) {
    if (own !== undefined) {
      fail(
        own.certField,
        'TLS needs the deployment\'s CA: add a [tls] table with ca = "<ca.pem>" ' +
          "(every node and the admin then use TLS)",
      );
    }
    return undefined;
  }
  const pair = own ?? tls.pair;
  if (pair === undefined) {
    fail(
      `${field}.tls_cert`,
      "missing; with [tls] every node and the admin need a certificate: set tls_cert and " +
        "tls_key here, or cert and key in [tls]",
    );
  }
  return {
    ca: tls.ca,
    cert: pair.cert,
    key: pair.key,
    fields: { ca: tls.caField, cert: pair.certField, key: pair.keyField },
  };
}

async function readPem(path: string, field: string): Promise<string> {
  let bytes: Uint8Array;
  try {
    const file = await Deno.open(path);
    try {
      const size = (await file.stat()).size;
      if (size > TLS_FILE_BYTES_MAX) {
        fail(field, `${path} is ${size} bytes, over the ${TLS_FILE_BYTES_MAX} a PEM file may have`);
      }
      bytes = new Uint8Array(size);
      let at = 0;
      while (at < size) {
        const n = await file.read(bytes.subarray(at));
        if (n === null) break;
        at += n;
      }
      bytes = bytes.subarray(0, at);
    } finally {
      file.close();
    }
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    const reason = error instanceof Deno.errors.NotFound
      ? "no such file"
      : error instanceof Error
      ? error.message
      : String(error);
    throw new ConfigError(field, `Invalid config field ${field}: cannot read ${path}: ${reason}`, {
      cause: error,
    });
  }
  return new TextDecoder().decode(bytes);
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

/** The certificates of a PEM text; throws a ConfigError naming `field` when there are none. */
function certificates(pem: string, field: string, path: string): X509Certificate[] {
  const blocks = pem.match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0) {
    fail(field, `${path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  }
  return blocks.map((block, i) => {
    try {
      return new X509Certificate(block);
    } catch (error) {
      return fail(field, `certificate ${i + 1} of ${path} does not parse: ${describe(error)}`);
    }
  });
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** A certificate outside its validity period fails every handshake: refuse it at start. */
function checkValidity(cert: X509Certificate, field: string, path: string, nowMs: number): void {
  if (Date.parse(cert.validFrom) > nowMs) {
    fail(field, `the certificate in ${path} is not valid before ${cert.validFrom}`);
  }
  if (Date.parse(cert.validTo) < nowMs) {
    fail(field, `the certificate in ${path} expired on ${cert.validTo}`);
  }
}

/**
 * Reads and checks the PEM files of `files`: the CA holds certificates, the certificate
 * parses and is valid now, the key parses and belongs to the certificate. Every problem is
 * a ConfigError naming the field that gave the path (`clusters[0].nodes[1].tls_cert`).
 */
export async function loadTlsFiles(
  files: TlsFiles,
  options: { nowMs?: number } = {},
): Promise<TlsMaterial> {
  const nowMs = options.nowMs ?? Date.now();
  const [ca, cert, key] = await Promise.all([
    readPem(files.ca, files.fields.ca),
    readPem(files.cert, files.fields.cert),
    readPem(files.key, files.fields.key),
  ]);
  certificates(ca, files.fields.ca, files.ca);
  const leaf = certificates(cert, files.fields.cert, files.cert)[0];
  checkValidity(leaf, files.fields.cert, files.cert, nowMs);
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(key);
  } catch (error) {
    return fail(
      files.fields.key,
      `${files.key} is not a PEM private key: ${describe(error).slice(0, 200)}`,
    );
  }
  if (privateKey.type !== "private") {
    fail(files.fields.key, `${files.key} is not a private key`);
  }
  if (!leaf.checkPrivateKey(privateKey)) {
    fail(
      files.fields.key,
      `${files.key} is not the private key of the certificate in ${files.cert} ` +
        `(${files.fields.cert})`,
    );
  }
  return { ca, cert, key };
}
