/**
 * The KV Connect listener out of file descriptors, for real: a child `deno` process under a small
 * limit of open files (`prlimit --nofile`) runs `listenKvConnect`, and is flooded with silent and
 * with half-sending connections from several loopback addresses (127.0.0.2–8 as source, to
 * 127.0.0.1), and made to run out of file descriptors inside `Deno.serve`'s accept loop. The
 * attack this answers: 400 silent connections exhausted 1024 descriptors, `Deno.serve`'s accept
 * loop died with an uncaught "Too many open files", and the admin with it. The child must stay
 * alive and serve a request afterwards. Skipped, saying so, without `prlimit` (util-linux).
 */
import assert from "node:assert/strict";
import net from "node:net";
import { waitFor } from "../../src/client/_fake_test_util.ts";

const LISTENER = new URL("../../src/kv_connect/_listener.ts", import.meta.url).href;
/** The child's soft and hard limit of open files: 48 connections by the front's arithmetic. */
const CHILD_FILES = 400;
const SOURCES = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6", "127.0.0.7"];
/** Connections per source address and kind (silent, half-sending): 480 in all. */
const PER_SOURCE = 40;

const CHILD = `
import { listenKvConnect } from ${JSON.stringify(LISTENER)};
const listener = listenKvConnect({
  hostname: "127.0.0.1",
  port: 0,
  handler: async (req) => {
    await req.body?.cancel();
    return new Response("served");
  },
  onError: (message, error) => console.error(message + ": " + error),
});
console.log(JSON.stringify({ port: listener.port, connectionsMax: listener.connectionsMax }));
// "hog": take every free file descriptor, then connect to Deno.serve's Unix socket (in the
// private folder the listener made under TMPDIR) with the last one, so that Deno.serve's own
// accept is what fails; "free": give them back.
const tmp = Deno.env.get("TMPDIR");
const hogs = [];
for await (const line of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
  if (line.includes("hog")) {
    const dir = [...Deno.readDirSync(tmp)].find((e) => e.name.startsWith("koi-kv-connect-"));
    try {
      for (;;) hogs.push(Deno.openSync("/dev/null"));
    } catch { /* out of file descriptors */ }
    hogs.pop().close();
    await Deno.connect({ transport: "unix", path: tmp + "/" + dir.name + "/serve.sock" })
      .catch(() => {});
    console.log("hogged");
  }
  if (line.includes("free")) {
    for (const h of hogs.splice(0)) h.close();
    console.log("freed");
  }
}
`;

async function prlimitMissing(): Promise<boolean> {
  try {
    const out = await new Deno.Command("prlimit", { args: ["--version"], stdout: "null" })
      .output();
    return !out.success;
  } catch {
    return true;
  }
}

interface Child {
  readonly port: number;
  readonly connectionsMax: number | null;
  readonly stdout: () => string;
  readonly stderr: () => string;
  readonly exited: () => boolean;
  tell(line: string): Promise<void>;
  stop(): Promise<void>;
}

async function startChild(): Promise<Child> {
  const tmp = await Deno.makeTempDir({ prefix: "koi-front-fd-" });
  const process = new Deno.Command("prlimit", {
    args: [`--nofile=${CHILD_FILES}:${CHILD_FILES}`, Deno.execPath(), "eval", CHILD],
    env: { NO_COLOR: "1", TMPDIR: tmp },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let out = "";
  let err = "";
  let exited = false;
  const status = process.status.then((s) => (exited = true, s));
  const collect = async (stream: ReadableStream<Uint8Array>, to: (s: string) => void) => {
    for await (const s of stream.pipeThrough(new TextDecoderStream())) to(s);
  };
  const reading = Promise.all([
    collect(process.stdout, (s) => (out += s)),
    collect(process.stderr, (s) => (err += s)),
  ]);
  const writer = process.stdin.getWriter();
  const stop = async () => {
    try {
      process.kill("SIGKILL"); // by its PID (prlimit execs deno in place)
    } catch { /* exited */ }
    await status;
    await writer.close().catch(() => {});
    await reading.catch(() => {});
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  };
  try {
    await waitFor(() => out.includes("\n") || exited, "the child's port", 20_000);
    assert.ok(!exited, `the child exited at start: ${err}`);
  } catch (error) {
    await stop();
    throw error;
  }
  const first = JSON.parse(out.slice(0, out.indexOf("\n")));
  return {
    port: first.port,
    connectionsMax: first.connectionsMax ?? null,
    stdout: () => out,
    stderr: () => err,
    exited: () => exited,
    tell: async (line) => {
      await writer.write(new TextEncoder().encode(line + "\n")).catch((error) => {
        throw new Error(`the child does not listen (${error}); it said: ${err}${out}`);
      });
    },
    stop,
  };
}

/** A connection from `source` to 127.0.0.1:`port` that sends `bytes` (nothing when empty). */
function openFrom(source: string, port: number, bytes: string): Promise<net.Socket> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port, localAddress: source });
    socket.on("error", () => {}); // the child closes some of them: that is the point
    socket.on("connect", () => {
      if (bytes !== "") socket.write(bytes);
      resolve(socket);
    });
    socket.on("close", () => resolve(socket));
  });
}

/** A legitimate request, tried until it is served or `ms` passed. */
async function served(port: number, ms = 10_000): Promise<string> {
  const until = Date.now() + ms;
  let last: unknown;
  while (Date.now() < until) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/kv`, {
        method: "POST",
        body: "x",
        signal: AbortSignal.timeout(2_000),
      });
      const body = await res.text();
      if (res.status === 200) return body;
      last = `${res.status} ${body}`;
    } catch (error) {
      last = error;
    }
    await new Promise((r) => setTimeout(r, 100)); // pacing between tries, not synchronisation
  }
  throw new Error(`not served within ${ms} ms: ${last}`);
}

const missing = await prlimitMissing();

Deno.test({
  name: "front (fd): a flood of silent and half-sending connections leaves the admin serving",
  ignore: missing,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const child = await startChild();
    const sockets: net.Socket[] = [];
    try {
      // (400 - 256) / 3 = 48: the bound follows the child's own limit of open files.
      assert.equal(child.connectionsMax, 48, "the bound from the soft limit");
      for (const source of SOURCES) {
        for (let i = 0; i < PER_SOURCE; i++) sockets.push(await openFrom(source, child.port, ""));
      }
      for (const source of SOURCES) {
        for (let i = 0; i < PER_SOURCE; i++) {
          // A request's head that never ends: each of these holds a connection to Deno.serve.
          sockets.push(await openFrom(source, child.port, "GET /kv HTTP/1.1\r\nhost: x\r\n"));
        }
      }
      assert.ok(!child.exited(), `the child died in the flood: ${child.stderr()}`);
      assert.equal(await served(child.port), "served", "a request during the flood");
      assert.ok(!child.exited(), `the child died: ${child.stderr()}`);
      assert.doesNotMatch(child.stderr(), /Uncaught/);
    } finally {
      for (const s of sockets) s.destroy();
      await child.stop();
    }
  },
});

Deno.test({
  name: "front (fd): Deno.serve's accept loop dying out of descriptors is started again",
  ignore: missing,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const child = await startChild();
    try {
      assert.equal(await served(child.port), "served");
      await child.tell("hog");
      await waitFor(
        () => /server stopped/.test(child.stderr()) || child.exited(),
        "Deno.serve's accept loop fails",
        10_000,
      );
      assert.ok(!child.exited(), `the child died out of descriptors: ${child.stderr()}`);
      await child.tell("free");
      await waitFor(() => child.stdout().includes("freed") || child.exited(), "freed", 10_000);
      assert.ok(!child.exited(), `the child died: ${child.stderr()}`);
      assert.equal(await served(child.port), "served", "served again after the restart");
      assert.ok(!child.exited(), `the child died: ${child.stderr()}`);
    } finally {
      await child.stop();
    }
  },
});
