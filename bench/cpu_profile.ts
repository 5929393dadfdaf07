/**
 * Takes a CPU profile of a running Deno process started with `--inspect=127.0.0.1:<port>`,
 * through the V8 inspector protocol (Deno 2.9 has no `--cpu-prof`), writes it as a
 * `.cpuprofile` (open it in Chrome DevTools) and prints the functions with the most self
 * time, and the self time per source file.
 *
 *   deno run -A bench/cpu_profile.ts <inspector port> <seconds> <out.cpuprofile> [top]
 *
 * @module
 */

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

/** Asks the inspector at `port` for a profile of `seconds`. */
async function takeProfile(port: number, seconds: number): Promise<Profile> {
  const targets = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
  const ws = new WebSocket(targets[0].webSocketDebuggerUrl);
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = reject;
  });
  let id = 0;
  const pending = new Map<number, (result: unknown) => void>();
  ws.onmessage = (event) => {
    const msg = JSON.parse(event.data);
    if (msg.id !== undefined) pending.get(msg.id)?.(msg.result);
  };
  const call = (method: string, params: unknown = {}) =>
    new Promise<unknown>((resolve) => {
      pending.set(++id, resolve);
      ws.send(JSON.stringify({ id, method, params }));
    });
  await call("Profiler.enable");
  await call("Profiler.setSamplingInterval", { interval: 200 });
  await call("Profiler.start");
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const { profile } = await call("Profiler.stop") as { profile: Profile };
  ws.close();
  return profile;
}

function shortUrl(url: string): string {
  const i = url.indexOf("/src/");
  if (i >= 0) return url.slice(i + 1);
  const npm = url.indexOf("/npm/");
  if (npm >= 0) return url.slice(npm + 1).replace(/registry\.npmjs\.org\//, "");
  return url.replace(/^file:\/\//, "").replace(/^ext:/, "ext:");
}

function report(profile: Profile, top: number): void {
  const total = profile.samples.length;
  const byFn = new Map<string, number>();
  const byFile = new Map<string, number>();
  for (const n of profile.nodes) {
    const hits = n.hitCount ?? 0;
    if (hits === 0) continue;
    const f = n.callFrame;
    const file = f.url === "" ? "(native)" : shortUrl(f.url);
    const name = `${f.functionName || "(anonymous)"}  ${file}:${f.lineNumber + 1}`;
    byFn.set(name, (byFn.get(name) ?? 0) + hits);
    byFile.set(file, (byFile.get(file) ?? 0) + hits);
  }
  const idle = (byFn.get("(idle)  (native):0") ?? 0) / total;
  console.log(
    `${total} samples over ${((profile.endTime - profile.startTime) / 1e6).toFixed(1)} s; idle ${
      (idle * 100).toFixed(1)
    } %`,
  );
  console.log("-- self time by function");
  for (const [name, hits] of [...byFn].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`${(hits / total * 100).toFixed(1).padStart(5)} %  ${name}`);
  }
  console.log("-- self time by file");
  for (const [file, hits] of [...byFile].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`${(hits / total * 100).toFixed(1).padStart(5)} %  ${file}`);
  }
}

if (import.meta.main) {
  const [port, seconds, out, top] = Deno.args;
  if (port === undefined || seconds === undefined || out === undefined) {
    console.error("usage: cpu_profile.ts <inspector port> <seconds> <out.cpuprofile> [top]");
    Deno.exit(2);
  }
  const profile = await takeProfile(Number(port), Number(seconds));
  await Deno.writeTextFile(out, JSON.stringify(profile));
  report(profile, Number(top ?? 25));
}
