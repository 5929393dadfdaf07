/**
 * TLS settings of config.toml: the `[tls]` table (the deployment's CA, and a certificate and
 * key every node and the admin use unless they name their own) and the per-node and admin
 * `tls_cert` / `tls_key` overrides. Validation here is pure (paths resolved, nothing read);
 * {@linkcode loadTlsFiles} reads and checks the PEM files when a node or the admin starts.
 *
 * @module
 */

import { createPrivateKey, type KeyObject, X509Certificate } from "node:crypto";
import { isIP } from "node:net";
import { resolve } from "node:path";
import { ConfigError } from "./_error.ts";
import type { NodeConfig, TlsFiles, TlsMaterial } from "./_schema.ts";
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

/** What a file that is not a regular one is, for the error that refuses it. */
function kindOf(info: Deno.FileInfo): string {
  return info.isDirectory
    ? "a directory"
    : info.isFifo
    ? "a FIFO (named pipe)"
    : info.isSocket
    ? "a socket"
    : info.isCharDevice
    ? "a character device"
    : info.isBlockDevice
    ? "a block device"
    : "not a regular file";
}

async function readPem(path: string, field: string): Promise<string> {
  let bytes: Uint8Array;
  try {
    // Looked at before it is opened: opening a FIFO blocks until a writer comes, which would
    // hang the start for good without a word, and a device never ends.
    const info = await Deno.stat(path);
    if (!info.isFile) fail(field, `${path} is ${kindOf(info)}, not a regular PEM file`);
    const file = await Deno.open(path);
    try {
      const opened = await file.stat();
      // Replaced between the two looks (by a directory, say): refused all the same.
      if (!opened.isFile) fail(field, `${path} is ${kindOf(opened)}, not a regular PEM file`);
      const size = opened.size;
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

/** A host a certificate must name (a node's `raft` or `http` host), and the field that gave it. */
export interface TlsHost {
  /** The host as config.toml gives it (an IP address or a DNS name, IPv6 without brackets). */
  readonly host: string;
  /** Its field, for the error: `clusters[0].nodes[1].http`. */
  readonly field: string;
}

/**
 * The hosts `node`'s certificate must name: peers dial its `raft` address and verify the name,
 * and the admin, the clients and forwarding followers its `http` one. `field` is the node's
 * (`clusters[0].nodes[1]`).
 */
export function tlsHostsOf(node: NodeConfig, field: string): TlsHost[] {
  return [
    { host: node.raft.host, field: `${field}.raft` },
    { host: node.http.host, field: `${field}.http` },
  ];
}

/**
 * Certificates in a chain followed from the leaf to the CA, at most: the leaf, a few
 * intermediates. Each step costs one signature check (about 0.5 ms).
 */
export const TLS_CHAIN_CERTIFICATES_MAX = 8;

/** Listen-everywhere hosts: what a client dials there is not known, so no name is checked. */
const WILDCARD_HOSTS = new Set(["0.0.0.0", "::"]);

/** Whether `issuer` signed `cert`: by name (checkIssued) and by signature (verify). */
function issued(issuer: X509Certificate, cert: X509Certificate): boolean {
  try {
    return cert.checkIssued(issuer) && cert.verify(issuer.publicKey);
  } catch {
    return false; // a key type or signature the runtime cannot check: not proven
  }
}

/** Why `cert` is outside its validity period now, or undefined. */
function validityProblem(cert: X509Certificate, nowMs: number): string | undefined {
  if (Date.parse(cert.validFrom) > nowMs) return `is not valid before ${cert.validFrom}`;
  if (Date.parse(cert.validTo) < nowMs) return `expired on ${cert.validTo}`;
  return undefined;
}

interface Problem {
  readonly field: string;
  readonly message: string;
}

/**
 * Why the chain `chain` (leaf first, as the cert file gives it) does not lead to a certificate
 * of the CA file that is valid now, or undefined. A CA file may hold several certificates: any
 * of them may have issued the leaf (or the last intermediate of the chain). Peers, the admin
 * and the clients verify against that file, so a certificate that does not chain to it fails
 * every handshake.
 */
function issuerProblem(
  chain: readonly X509Certificate[],
  cas: readonly X509Certificate[],
  files: TlsFiles,
  nowMs: number,
): Problem | undefined {
  const { fields } = files;
  let current = chain[0];
  const rest = chain.slice(1, TLS_CHAIN_CERTIFICATES_MAX);
  for (;;) {
    const anchors = cas.filter((ca) => issued(ca, current));
    if (anchors.length > 0) {
      if (anchors.some((ca) => validityProblem(ca, nowMs) === undefined)) return undefined;
      const ca = anchors[0];
      return {
        field: fields.ca,
        message: `the CA certificate "${ca.subject}" in ${files.ca} that issued the certificate ` +
          `of ${fields.cert} (${files.cert}) ${validityProblem(ca, nowMs)}`,
      };
    }
    const at = rest.findIndex((c) => issued(c, current));
    if (at < 0) break;
    const next = rest.splice(at, 1)[0];
    const invalid = validityProblem(next, nowMs);
    if (invalid !== undefined) {
      return {
        field: fields.cert,
        message: `the intermediate certificate "${next.subject}" in ${files.cert} ${invalid}`,
      };
    }
    current = next;
  }
  const sameName = cas.some((ca) => ca.subject === current.issuer);
  return {
    field: fields.cert,
    message: `the certificate in ${files.cert} is not issued by a certificate of ${fields.ca} ` +
      `(${files.ca}): ${
        current === chain[0] ? "it" : `its chain ends in "${current.subject}", which`
      } ` +
      `names the issuer "${current.issuer}"` +
      (sameName
        ? ", and the CA certificate of that name did not sign it (another key)"
        : `, and ${fields.ca} holds ${cas.map((ca) => `"${ca.subject}"`).join(", ")}`) +
      "; peers and clients would refuse it",
  };
}

/** The DNS names of `cert`'s subjectAltName (Node's text form: `DNS:a, IP Address:1.2.3.4`). */
function dnsNames(cert: X509Certificate): string[] {
  const names: string[] = [];
  for (const entry of (cert.subjectAltName ?? "").split(/, (?=[A-Za-z ]+:)/)) {
    if (!entry.startsWith("DNS:")) continue;
    let name = entry.slice("DNS:".length);
    if (name.startsWith('"')) {
      try {
        name = JSON.parse(name); // Node quotes names with unusual characters
      } catch {
        continue;
      }
    }
    names.push(name.toLowerCase().replace(/\.$/, ""));
  }
  return names;
}

/**
 * Whether `cert` names `host` the way the TLS clients here (rustls) check it: an IP address
 * against the IP entries of the subjectAltName, a DNS name against its DNS entries without
 * case, a wildcard standing for exactly one leftmost label; the subject's CN does not count.
 * (Deno 2.9.6's `checkHost` ignores case and wildcards and falls back to the CN, so it is not
 * used.)
 */
function namesHost(cert: X509Certificate, host: string): boolean {
  if (isIP(host) !== 0) return cert.checkIP(host) !== undefined;
  const wanted = host.toLowerCase().replace(/\.$/, "");
  const dot = wanted.indexOf(".");
  return dnsNames(cert).some((name) =>
    name === wanted ||
    (name.startsWith("*.") && dot > 0 && name.slice(2) === wanted.slice(dot + 1))
  );
}

/** Why `cert` does not name each host of `hosts` it must, or undefined. */
function hostProblem(
  cert: X509Certificate,
  hosts: readonly TlsHost[],
  files: TlsFiles,
): Problem | undefined {
  for (const { host, field } of hosts) {
    if (WILDCARD_HOSTS.has(host) || namesHost(cert, host)) continue;
    const entry = isIP(host) !== 0 ? `IP:${host}` : `DNS:${host}`;
    return {
      field: files.fields.cert,
      message: `the certificate in ${files.cert} does not name ${host}, the host of ${field}: ` +
        `its subjectAltName is ${cert.subjectAltName ?? "absent"}; it needs ${entry} ` +
        "(clients check the name they dial against it)",
    };
  }
  return undefined;
}

/** Options of {@linkcode loadTlsFiles}. */
export interface LoadTlsOptions {
  /** The time to check validity against (ms since the epoch; default now). */
  readonly nowMs?: number;
  /** Hosts the certificate must name (see {@linkcode tlsHostsOf}); default none. */
  readonly hosts?: readonly TlsHost[];
  /**
   * Given: a certificate not issued by the CA, or not naming a host of `hosts`, is reported
   * here instead of refused (the admin's own certificate: its clients reach it by names
   * config.toml does not know, and may trust it through another CA).
   */
  readonly warn?: (message: string) => void;
}

/**
 * Reads and checks the PEM files of `files`: each is a regular file (a FIFO would block the
 * start for good), the CA holds certificates, the certificate parses and is valid now, the key
 * parses and belongs to the certificate, the certificate is issued by a certificate of the CA
 * file that is valid now (directly or through intermediates of the certificate file), and it
 * names every host of `options.hosts`. Every problem is a ConfigError naming the field that
 * gave the path (`clusters[0].nodes[1].tls_cert`): a certificate the other side would refuse
 * is found at start, not as a cluster that waits for a leader forever.
 */
export async function loadTlsFiles(
  files: TlsFiles,
  options: LoadTlsOptions = {},
): Promise<TlsMaterial> {
  const nowMs = options.nowMs ?? Date.now();
  const [ca, cert, key] = await Promise.all([
    readPem(files.ca, files.fields.ca),
    readPem(files.cert, files.fields.cert),
    readPem(files.key, files.fields.key),
  ]);
  const cas = certificates(ca, files.fields.ca, files.ca);
  const chain = certificates(cert, files.fields.cert, files.cert);
  const leaf = chain[0];
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
  for (
    const problem of [
      issuerProblem(chain, cas, files, nowMs),
      hostProblem(leaf, options.hosts ?? [], files),
    ]
  ) {
    if (problem === undefined) continue;
    const message = `Invalid config field ${problem.field}: ${problem.message}`;
    if (options.warn === undefined) throw new ConfigError(problem.field, message);
    options.warn(message);
  }
  return { ca, cert, key };
}
