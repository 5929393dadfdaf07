/**
 * Test certificates made with `openssl` (Debian's package): a deployment CA (valid 2 days), leaf
 * certificates it signs (SAN IP:127.0.0.1, usable as server and client; others with
 * {@linkcode makeTestLeaf}), and an unrelated second CA with a leaf of its own, in a temporary
 * folder. Tests that need them skip, with
 * a printed reason, when `openssl` is missing.
 *
 * @module
 */

import { join } from "node:path";

/** A certificate and its key, as files and as PEM text. */
export interface TestCert {
  readonly certPath: string;
  readonly keyPath: string;
  readonly cert: string;
  readonly key: string;
}

/** What {@linkcode makeTestPki} made. */
export interface TestPki {
  /** The folder holding every file. */
  readonly dir: string;
  /** The deployment CA's certificate file and PEM text. */
  readonly caPath: string;
  readonly ca: string;
  /** Leaves signed by the deployment CA, by name. */
  readonly leaves: ReadonlyMap<string, TestCert>;
  /** A CA that has nothing to do with the deployment, and a leaf it signed (`rogue`). */
  readonly otherCaPath: string;
  readonly otherCa: string;
  readonly rogue: TestCert;
}

let available: Promise<string | undefined> | undefined;

/** Why the TLS tests cannot run (no `openssl`), or undefined when they can. */
export function opensslMissing(): Promise<string | undefined> {
  available ??= (async () => {
    try {
      const { success } = await new Deno.Command("openssl", {
        args: ["version"],
        stdout: "null",
        stderr: "null",
      }).output();
      return success ? undefined : "`openssl version` failed";
    } catch {
      return "openssl is not installed (apt-get install -y openssl)";
    }
  })();
  return available;
}

/** Registers a TLS test; it is ignored, saying why, when openssl is missing. */
export async function tlsTest(name: string, fn: () => Promise<void>): Promise<void> {
  const missing = await opensslMissing();
  if (missing !== undefined) console.warn(`SKIPPED "${name}": ${missing}`);
  Deno.test({ name, ignore: missing !== undefined, fn });
}

async function openssl(args: string[], cwd: string): Promise<void> {
  const out = await new Deno.Command("openssl", { args, cwd, stdout: "piped", stderr: "piped" })
    .output();
  if (!out.success) {
    throw new Error(`openssl ${args.join(" ")} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
}

const EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

async function makeCa(dir: string, name: string): Promise<void> {
  await openssl(
    ["req", "-x509", ...EC, "-keyout", `${name}.key`, "-out", `${name}.pem`, "-days", "2"]
      .concat(["-subj", `/CN=${name}`]),
    dir,
  );
}

/** Options of {@linkcode makeTestLeaf}. */
export interface TestLeafOptions {
  /** The name of the CA in the folder that signs it (`ca.pem`, `ca.key`); default "ca". */
  readonly ca?: string;
  /** Its subjectAltName (openssl syntax); default `IP:127.0.0.1`. */
  readonly san?: string;
  /** Days it is valid; default 2. */
  readonly days?: number;
  /** An intermediate CA (CA:TRUE, may sign leaves) instead of a leaf. */
  readonly intermediate?: boolean;
}

/**
 * Makes `<name>.pem` and `<name>.key` in `dir`, signed by the CA `options.ca` of that folder:
 * by default a leaf for 127.0.0.1, usable as server and client.
 */
export async function makeTestLeaf(
  dir: string,
  name: string,
  options: TestLeafOptions = {},
): Promise<TestCert> {
  const ca = options.ca ?? "ca";
  await openssl(
    ["req", ...EC, "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${name}`],
    dir,
  );
  await Deno.writeTextFile(
    join(dir, `${name}.ext`),
    options.intermediate
      ? "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"
      : `subjectAltName=${options.san ?? "IP:127.0.0.1"}\nbasicConstraints=CA:FALSE\n` +
        "keyUsage=digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n",
  );
  const days = String(options.days ?? 2);
  await openssl(
    ["x509", "-req", "-in", `${name}.csr`, "-CA", `${ca}.pem`, "-CAkey", `${ca}.key`]
      .concat(["-CAcreateserial", "-out", `${name}.pem`, "-days", days, "-extfile", `${name}.ext`]),
    dir,
  );
  const certPath = join(dir, `${name}.pem`);
  const keyPath = join(dir, `${name}.key`);
  return {
    certPath,
    keyPath,
    cert: await Deno.readTextFile(certPath),
    key: await Deno.readTextFile(keyPath),
  };
}

/** Makes a CA, one leaf per name of `leaves`, and an unrelated CA with a `rogue` leaf. */
export async function makeTestPki(leaves: readonly string[], dir?: string): Promise<TestPki> {
  const at = dir ?? await Deno.makeTempDir({ prefix: "koi-tls-" });
  await Promise.all([makeCa(at, "ca"), makeCa(at, "other-ca")]);
  const made = new Map<string, TestCert>();
  for (const name of leaves) made.set(name, await makeTestLeaf(at, name));
  const rogue = await makeTestLeaf(at, "rogue", { ca: "other-ca" });
  return {
    dir: at,
    caPath: join(at, "ca.pem"),
    ca: await Deno.readTextFile(join(at, "ca.pem")),
    leaves: made,
    otherCaPath: join(at, "other-ca.pem"),
    otherCa: await Deno.readTextFile(join(at, "other-ca.pem")),
    rogue,
  };
}
