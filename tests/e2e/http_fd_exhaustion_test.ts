/**
 * Out of file descriptors: Deno's node:http stops accepting for good after an EMFILE, with no
 * error event. koi's HTTP server (the node's and the admin's) notices and listens again.
 */
import assert from "node:assert/strict";
import { freePorts, waitFor } from "./_cluster.ts";

const SERVER = new URL("../../src/http/server.ts", import.meta.url).href;
const ROOT = new URL("../../", import.meta.url).pathname;

Deno.test({
  name: "http server: after running out of file descriptors it accepts connections again",
  sanitizeResources: false,
  async fn() {
    const [port] = freePorts(1);
    const dir = await Deno.makeTempDir();
    const script = `${dir}/server.ts`;
    await Deno.writeTextFile(
      script,
      `import { HttpServer } from "${SERVER}";
const s = await HttpServer.listen({
  hostname: "127.0.0.1", port: ${port}, fetch: () => new Response("ok"),
  limits: { connectionsMax: 1000, acceptCheckMs: 300 },
  onError: (m) => console.log(m),
});
console.log("listening");`,
    );
    // A descriptor limit of 128 for the server only; the test opens 300 connections.
    const child = new Deno.Command("bash", {
      args: [
        "-c",
        `ulimit -n 128 && exec "${Deno.execPath()}" run -A --config ${ROOT}deno.json ${script}`,
      ],
      stdout: "piped",
      stderr: "piped",
      stdin: "null",
    }).spawn();
    let output = "";
    const collect = (async () => {
      for await (const c of child.stdout.pipeThrough(new TextDecoderStream())) output += c;
    })();
    const errors = (async () => {
      for await (const c of child.stderr.pipeThrough(new TextDecoderStream())) output += c;
    })();
    const conns: Deno.Conn[] = [];
    try {
      await waitFor(() => output.includes("listening"), "the server listens");
      for (let i = 0; i < 300; i++) {
        conns.push(await Deno.connect({ hostname: "127.0.0.1", port }));
      }
      for (const c of conns) c.close();
      conns.length = 0;
      await waitFor(
        async () => {
          const r = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(500) });
          return (await r.text()) === "ok";
        },
        "the server answers again",
        20_000,
      );
      assert.match(
        output,
        /stopped accepting connections \(out of file descriptors\?\): listening again/,
      );
    } finally {
      for (const c of conns) c.close();
      try {
        child.kill("SIGKILL");
      } catch { /* exited */ }
      await child.status;
      await collect.catch(() => {});
      await errors.catch(() => {});
      await Deno.remove(dir, { recursive: true });
    }
  },
});
