/**
 * Test support: `Deno.openKv(url)` against the KV Connect handler and gateway on a
 * `Deno.serve` listener, over fake nodes (`_fake_kvc_test_util.ts`) of three clusters.
 *
 * @module
 */
import { connect } from "../client/mod.ts";
import { FakeKvcDeployment } from "./_fake_kvc_test_util.ts";
import { type GatewayOptions, KvConnectGateway } from "./_gateway.ts";
import { kvConnectHandler } from "./_handler.ts";
import { type KvConnectListener, listenKvConnect } from "./_listener.ts";

/** The access token of the tests (every test file sets the same one in the environment). */
export const TEST_TOKEN = "the-access-token-0123456789";
/** The database id of the tests. */
export const TEST_DATABASE_ID = "6f1c2f6e-4c1b-4a51-9d8e-3f1a2b3c4d5e";

/** What a test gets. */
export interface GatewayContext {
  readonly fake: FakeKvcDeployment;
  readonly gateway: KvConnectGateway;
  readonly listener: KvConnectListener;
  /** The endpoint's URL (`http://127.0.0.1:<port>/kv`). */
  readonly url: string;
  /** Deno's own client, opened on `url`. */
  readonly kv: Deno.Kv;
}

/**
 * Runs `fn` with a gateway over fake clusters a (nodes a1, a2), b (b1) and c (c1); stops
 * everything afterwards. The client gives up after `timeoutMs` (default 2 s).
 */
export async function withGateway(
  fn: (context: GatewayContext) => Promise<void>,
  options: { timeoutMs?: number; gateway?: Partial<GatewayOptions> } = {},
): Promise<void> {
  const fake = FakeKvcDeployment.start({
    clusters: [{ id: "a", nodes: ["a1", "a2"] }, { id: "b", nodes: ["b1"] }, {
      id: "c",
      nodes: ["c1"],
    }],
  });
  const timeoutMs = options.timeoutMs ?? 2_000;
  const gateway = new KvConnectGateway({
    connect: (signal) =>
      connect(fake.deployment.adminUrl, {
        signal,
        timeoutMs,
        attemptTimeoutMs: timeoutMs,
        retryBaseMs: 5,
        retryMaxMs: 50,
      }),
    timeoutMs,
    watch: { pollMs: 20 },
    ...options.gateway,
  });
  const handler = kvConnectHandler(gateway, {
    accessTokens: [TEST_TOKEN],
    databaseId: TEST_DATABASE_ID,
    basePath: "/kv",
    keepAliveMs: 200,
  });
  const listener = listenKvConnect({
    hostname: "127.0.0.1",
    port: 0,
    handler,
    beforeClose: () => gateway.close(),
  });
  Deno.env.set("DENO_KV_ACCESS_TOKEN", TEST_TOKEN);
  const url = `http://127.0.0.1:${listener.port}/kv`;
  const kv = await Deno.openKv(url);
  try {
    await fn({ fake, gateway, listener, url, kv });
  } finally {
    kv.close();
    await listener.close();
    await fake.close();
  }
}
