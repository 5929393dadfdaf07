/**
 * The admin's KV Connect service (`[kv_connect]` of config.toml): the access tokens (the
 * file's, or one generated and kept in `<admin.data>/kv_connect_token`), the gateway over the
 * deployment's clusters, and its listener on `kv_connect.listen` (HTTPS with the admin's
 * certificate when the deployment runs TLS). The gateway's routing client reads the table
 * from the admin in process, never over the network.
 *
 * @module
 */
import { FRONT_CONNECTIONS_MAX } from "../kv_connect/_front.ts";
import { connect } from "../client/mod.ts";
import type { KvConnectConfig, TlsMaterial } from "../config/mod.ts";
import {
  KvConnectGateway,
  kvConnectHandler,
  type KvConnectListener,
  listenKvConnect,
} from "../kv_connect/mod.ts";
import { loadOrCreateKvConnectToken, type StoredKvConnectToken } from "./_kv_connect_token.ts";

/** The path KV Connect is served under: `Deno.openKv("http://<listen>/kv")`. */
export const KV_CONNECT_BASE_PATH = "/kv";
/** The origin the gateway's client fetches the admin's table from, in process. */
const ADMIN_IN_PROCESS = "http://admin.koi.invalid";
/** Idle pooled connections to the nodes are dropped after this long (below their 5 s). */
const POOL_IDLE_MS = 2_000;
/** How long the gateway's client waits for a first routing table, per request. */
const CONNECT_TIMEOUT_MS = 5_000;

/** What the admin says about KV Connect when it is ready. */
export interface KvConnectInfo {
  /** The URL to give `Deno.openKv`. */
  readonly url: string;
  /** The generated token, when config.toml lists none. */
  readonly generated?: StoredKvConnectToken;
  /** How many tokens config.toml lists (0: the generated one is used). */
  readonly configuredTokens: number;
  /** With TLS: the CA file clients must trust (`DENO_CERT`). */
  readonly caPath?: string;
  /** Connections the listener takes at most (from the soft limit of open files). */
  readonly connectionsMax?: number;
}

/** A running KV Connect service. */
export interface KvConnectService {
  readonly info: KvConnectInfo;
  readonly gateway: KvConnectGateway;
  readonly listener: KvConnectListener;
  /** Ends the watches, stops listening, closes the gateway's client. */
  close(): Promise<void>;
}

/** Options of {@linkcode startKvConnect}. */
export interface StartKvConnectOptions {
  readonly config: KvConnectConfig;
  /** The admin's state directory (`admin.data`). */
  readonly dataDir: string;
  /** The admin's own HTTP API, called in process for `/v1/carp`. */
  readonly adminFetch: (request: Request) => Response | Promise<Response>;
  /** With TLS: the admin's certificate and key, the CA's PEM and its file. */
  readonly tls?: TlsMaterial & { readonly caPath: string };
  readonly log: (line: string) => void;
  /** The secret of a cluster's nodes (transaction commands need it), if they have one. */
  readonly secretOf?: (cluster: string) => string | undefined;
}

/**
 * The database id: derived from the state directory, so it stays the same across restarts
 * (a client's `x-denokv-database-id` stays right) and differs between deployments.
 */
export async function databaseIdOf(dataDir: string): Promise<string> {
  const digest = new Uint8Array(
    await crypto.subtle.digest(
      "SHA-256",
      new TextEncoder().encode(`koi kv connect database\0${dataDir}`),
    ),
  ).subarray(0, 16);
  digest[6] = (digest[6] & 0x0f) | 0x40; // shaped as a version-4 UUID
  digest[8] = (digest[8] & 0x3f) | 0x80;
  const hex = [...digest].map((b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${
    hex.slice(20)
  }`;
}

/** Starts the KV Connect service of `[kv_connect]`. */
export async function startKvConnect(options: StartKvConnectOptions): Promise<KvConnectService> {
  const { config, tls, log } = options;
  const generated = config.tokens === undefined
    ? await loadOrCreateKvConnectToken(options.dataDir)
    : undefined;
  if (generated?.created) {
    log(`generated the KV Connect access token in ${generated.path} (mode 0600)`);
  }
  if (generated?.modeFixed !== undefined) {
    log(
      `${generated.path} was readable by others (mode ${
        generated.modeFixed.toString(8)
      }); set it back to 0600`,
    );
  }
  const http = Deno.createHttpClient({
    poolIdleTimeout: POOL_IDLE_MS,
    ...(tls === undefined ? {} : { caCerts: [tls.ca] }),
  });
  const fetchRouted = async (input: URL, init: RequestInit): Promise<Response> =>
    input.origin === ADMIN_IN_PROCESS
      ? await options.adminFetch(new Request(input, init))
      : await fetch(input, { ...init, client: http });
  const gateway = new KvConnectGateway({
    connect: (signal) =>
      connect(ADMIN_IN_PROCESS, {
        fetch: fetchRouted,
        clientId: "koi-kvc",
        connectTimeoutMs: CONNECT_TIMEOUT_MS,
        signal,
      }),
    watch: { onError: log },
    // Transaction commands need the cluster's secret: its nodes' (config.toml, or generated).
    secretOf: (cluster) => options.secretOf?.(cluster),
  });
  // Decisions whose coordinator died are applied and forgotten in the background.
  gateway.startJanitor();
  const handler = kvConnectHandler(gateway, {
    accessTokens: config.tokens ?? [generated!.token],
    databaseId: await databaseIdOf(options.dataDir),
    basePath: KV_CONNECT_BASE_PATH,
    onError: (message, error) => log(`${message}: ${error}`),
  });
  let listener: KvConnectListener;
  try {
    listener = listenKvConnect({
      hostname: config.listen.host,
      port: config.listen.port,
      handler,
      ...(tls === undefined ? {} : { tls: { cert: tls.cert, key: tls.key } }),
      beforeClose: () => gateway.close(),
      onError: (message, error) => log(`${message}: ${error}`),
    });
  } catch (error) {
    await gateway.close();
    http.close();
    throw new Error(
      `Cannot listen on kv_connect.listen (${config.listen.text}): ${(error as Error).message}`,
      { cause: error },
    );
  }
  const host = config.listen.host.includes(":") ? `[${config.listen.host}]` : config.listen.host;
  const url = `${tls === undefined ? "http" : "https"}://${host}:${listener.port}` +
    KV_CONNECT_BASE_PATH;
  return {
    info: {
      url,
      ...(generated === undefined ? {} : { generated }),
      configuredTokens: config.tokens?.length ?? 0,
      ...(tls === undefined ? {} : { caPath: tls.caPath }),
      connectionsMax: listener.connectionsMax,
    },
    gateway,
    listener,
    close: async () => {
      await listener.close();
      http.close();
    },
  };
}

/** One line the admin prints: after `[admin] `, or bare (to paste into a shell). */
export interface PrintedLine {
  readonly text: string;
  readonly bare: boolean;
}

/**
 * What the admin prints about KV Connect when it is ready: the URL, and the generated token
 * as `DENO_KV_ACCESS_TOKEN=<token>`, bare, ready to paste. Tokens of config.toml are not
 * printed (they are in the file already, and logs travel).
 */
export function kvConnectLines(info: KvConnectInfo, configPath: string): PrintedLine[] {
  const lines: PrintedLine[] = [{
    text: `KV Connect: ${info.url}` +
      (info.connectionsMax === undefined || info.connectionsMax >= FRONT_CONNECTIONS_MAX
        ? ""
        : ` (at most ${info.connectionsMax} connections: the limit of open files allows no ` +
          `more; raise it, e.g. ulimit -n 4096)`),
    bare: false,
  }];
  if (info.caPath !== undefined) {
    lines.push({
      text: `KV Connect is HTTPS: start Deno with DENO_CERT=${info.caPath} to trust it`,
      bare: false,
    });
  }
  if (info.generated !== undefined) {
    lines.push({ text: `DENO_KV_ACCESS_TOKEN=${info.generated.token}`, bare: true });
  } else {
    lines.push({
      text: `KV Connect access token: ${
        info.configuredTokens === 1 ? "the one" : `one of the ${info.configuredTokens}`
      } of [kv_connect] tokens in ${configPath || "the config"} (not printed)`,
      bare: false,
    });
  }
  return lines;
}
