/**
 * Takes a V8 heap snapshot of a running Deno process started with
 * `--inspect=127.0.0.1:<port>` (through the inspector protocol; the snapshot forces a full
 * garbage collection first, so it shows what is live) and prints the live bytes by
 * constructor, to see where a node's memory per key goes.
 *
 *   deno run -A bench/heap_profile.ts <inspector port> [top] [out.heapsnapshot]
 *
 * @module
 */

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[]] }; node_count: number };
  nodes: number[];
  strings: string[];
}

/** Asks the inspector at `port` for a heap snapshot; returns its JSON text. */
async function takeSnapshot(port: number): Promise<string> {
  const targets = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
  const ws = new WebSocket(targets[0].webSocketDebuggerUrl);
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = reject;
  });
  const chunks: string[] = [];
  let done!: () => void;
  const finished = new Promise<void>((resolve) => (done = resolve));
  ws.onmessage = (event) => {
    const msg = JSON.parse(event.data);
    if (msg.method === "HeapProfiler.addHeapSnapshotChunk") chunks.push(msg.params.chunk);
    if (msg.id === 2) done();
  };
  ws.send(JSON.stringify({ id: 1, method: "HeapProfiler.enable" }));
  ws.send(JSON.stringify({ id: 2, method: "HeapProfiler.takeHeapSnapshot", params: {} }));
  await finished;
  ws.close();
  return chunks.join("");
}

function report(text: string, top: number): void {
  const s = JSON.parse(text) as Snapshot;
  const fields = s.snapshot.meta.node_fields;
  const types = s.snapshot.meta.node_types[0];
  const width = fields.length;
  const typeAt = fields.indexOf("type");
  const nameAt = fields.indexOf("name");
  const sizeAt = fields.indexOf("self_size");
  const bytes = new Map<string, { bytes: number; count: number }>();
  let total = 0;
  for (let i = 0; i < s.nodes.length; i += width) {
    const type = types[s.nodes[i + typeAt]];
    const size = s.nodes[i + sizeAt];
    total += size;
    // Objects by constructor; strings, arrays, code and the rest by their type.
    const name = type === "object" || type === "native" || type === "closure"
      ? `${type} ${s.strings[s.nodes[i + nameAt]]}`
      : `(${type})`;
    const entry = bytes.get(name) ?? { bytes: 0, count: 0 };
    entry.bytes += size;
    entry.count++;
    bytes.set(name, entry);
  }
  console.log(`live heap ${(total / 1e6).toFixed(1)} MB in ${s.snapshot.node_count} objects`);
  for (const [name, e] of [...bytes].sort((a, b) => b[1].bytes - a[1].bytes).slice(0, top)) {
    console.log(
      `${(e.bytes / 1e6).toFixed(1).padStart(7)} MB ${String(e.count).padStart(9)}  ${
        name.slice(0, 90)
      }`,
    );
  }
}

if (import.meta.main) {
  const [port, top, out] = Deno.args;
  if (port === undefined) {
    console.error("usage: heap_profile.ts <inspector port> [top] [out.heapsnapshot]");
    Deno.exit(2);
  }
  const text = await takeSnapshot(Number(port));
  if (out !== undefined) await Deno.writeTextFile(out, text);
  report(text, Number(top ?? 25));
}
