/**
 * NetLab builds namespaces joined by a bridge that the host reaches, cuts links between them
 * with iptables (both ways, one way, partitions, Jepsen's bridge), heals them, and deletes
 * everything it made. Skipped, with the reason printed, where namespaces cannot be used.
 *
 * Probes: TCP connects with bash's /dev/tcp under `timeout` (a dropped SYN shows as a
 * timeout, exit 124; a reachable closed port as "refused"), listeners are python3 one-liners.
 *
 * @module
 */
import assert from "node:assert/strict";
import { CHAOS_CHAIN, execCommand, NetLab, runCommand } from "./_netns.ts";

const available = await NetLab.available();
if (!available.ok) {
  console.log(`netns_test: skipped, network namespaces unusable: ${available.reason}`);
}
const ignore = !available.ok;

/** The real interpreter, not the pyenv shim (a bash script), so listeners start fast. */
const python = ignore ? "python3" : (await runCommand([
  "python3",
  "-c",
  "import sys; print(sys.executable)",
])).trim();

const PORT = 7811;
const PROBE_MS = 500;

const TCP_LISTENER = `
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(128)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    c.close()
`;

const UDP_LISTENER = `
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
print("ready", flush=True)
while True:
    d, a = s.recvfrom(65535)
    print(d.decode().strip() + " from " + a[0], flush=True)
`;

/** A long-running child whose stdout lines are collected; stopped by its own PID only. */
class Proc {
  readonly child: Deno.ChildProcess;
  readonly lines: string[] = [];
  readonly #pump: Promise<void>;
  #wake: () => void = () => {};

  constructor(argv: string[]) {
    this.child = new Deno.Command(argv[0], {
      args: argv.slice(1),
      stdin: "null",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    this.#pump = this.#read();
  }

  async #read(): Promise<void> {
    let buf = "";
    for await (const chunk of this.child.stdout.pipeThrough(new TextDecoderStream())) {
      buf += chunk;
      const parts = buf.split("\n");
      buf = parts.pop() ?? "";
      this.lines.push(...parts);
      this.#wake();
    }
  }

  /** Waits up to `ms` for a line containing `text`. */
  async waitFor(text: string, ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (!this.lines.some((l) => l.includes(text))) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
    }
    return true;
  }

  async stop(): Promise<void> {
    try {
      this.child.kill("SIGKILL");
    } catch {
      // already exited
    }
    await this.child.status;
    await this.#pump;
  }
}

/** Runs `body` with a lab of `names` and a TCP listener on every node; cleans up always. */
async function withLab(
  names: string[],
  body: (lab: NetLab, procs: Proc[]) => Promise<void>,
): Promise<void> {
  const lab = await NetLab.create(names);
  const procs: Proc[] = [];
  try {
    for (const n of names) {
      const p = new Proc(lab.wrap(n, [python, "-c", TCP_LISTENER, lab.address(n), `${PORT}`]));
      procs.push(p);
    }
    for (const p of procs) assert.ok(await p.waitFor("ready", 5000), "listener did not start");
    await body(lab, procs);
  } finally {
    await Promise.all(procs.map((p) => p.stop()));
    await lab.close();
  }
}

type Probe = "ok" | "timeout" | "refused";

/** TCP connect to `host:port` from node `from` (or the host namespace if null). */
async function tcp(lab: NetLab, from: string | null, host: string, port = PORT): Promise<Probe> {
  const cmd = [
    "timeout",
    `${PROBE_MS / 1000}`,
    "bash",
    "-c",
    'exec 3<>"/dev/tcp/$0/$1"',
    host,
    `${port}`,
  ];
  const r = await execCommand(from === null ? cmd : lab.wrap(from, cmd));
  if (r.code === 0) return "ok";
  if (r.code === 124) return "timeout";
  if (r.stderr.includes("refused")) return "refused";
  throw new Error(`probe ${from} -> ${host}: exit ${r.code}: ${r.stderr}`);
}

/** Probes every ordered pair in `pairs` (node names; "host" = host namespace) in parallel. */
async function reach(lab: NetLab, pairs: Array<[string, string]>): Promise<string[]> {
  return await Promise.all(
    pairs.map(async ([a, b]) =>
      `${a}->${b}: ${await tcp(lab, a === "host" ? null : a, lab.address(b))}`
    ),
  );
}

function expectAll(pairs: Array<[string, string]>, result: Probe): string[] {
  return pairs.map(([a, b]) => `${a}->${b}: ${result}`);
}

async function chainRules(lab: NetLab, name: string): Promise<string[]> {
  const out = await runCommand(lab.wrap(name, ["iptables", "-S", CHAOS_CHAIN]));
  return out.split("\n").filter((l) => l.startsWith("-A"));
}

const HOST_TO_ALL: Array<[string, string]> = [["host", "n1"], ["host", "n2"], ["host", "n3"]];
const MESH: Array<[string, string]> = [
  ["n1", "n2"],
  ["n2", "n1"],
  ["n1", "n3"],
  ["n3", "n1"],
  ["n2", "n3"],
  ["n3", "n2"],
];

Deno.test({
  name: "netns: the host reaches every node, and nodes reach each other",
  ignore,
  fn: () =>
    withLab(["n1", "n2", "n3"], async (lab) => {
      assert.match(lab.subnet, /^10\.20[0-7]\.\d+\.0\/24$/);
      assert.equal(lab.hostAddress, lab.subnet.replace(/0\/24$/, "1"));
      assert.deepEqual(lab.names.map((n) => lab.address(n).split(".")[3]), ["2", "3", "4"]);
      assert.deepEqual(await reach(lab, [...HOST_TO_ALL, ...MESH]), [
        ...expectAll(HOST_TO_ALL, "ok"),
        ...expectAll(MESH, "ok"),
      ]);
      // A port nobody listens on answers RST: the probe tells refused from dropped.
      assert.equal(await tcp(lab, "n1", lab.address("n2"), PORT + 1), "refused");
      // Each namespace has its own loopback: a node cannot reach the host's 127.0.0.1.
      const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      try {
        const port = listener.addr.port;
        assert.equal(await tcp(lab, null, "127.0.0.1", port), "ok");
        assert.equal(await tcp(lab, "n1", "127.0.0.1", port), "refused");
      } finally {
        listener.close();
      }
      assert.equal(lab.describe(), "healed");
    }),
});

Deno.test({
  name: "netns: isolate cuts one node from the others both ways, not from the host; heal",
  ignore,
  fn: () =>
    withLab(["n1", "n2", "n3"], async (lab) => {
      await lab.isolate("n1");
      assert.equal(lab.describe(), "n1 <-/-> n2, n1 <-/-> n3");
      const cutPairs = MESH.filter(([a, b]) => a === "n1" || b === "n1");
      const kept: Array<[string, string]> = [["n2", "n3"], ["n3", "n2"]];
      const started = Date.now();
      assert.deepEqual(await reach(lab, [...cutPairs, ...kept, ...HOST_TO_ALL]), [
        ...expectAll(cutPairs, "timeout"),
        ...expectAll(kept, "ok"),
        ...expectAll(HOST_TO_ALL, "ok"),
      ]);
      assert.ok(Date.now() - started < 5000, "probes took too long");
      // The lab's chains hold DROPs only, never anything about the host address.
      const rules = await chainRules(lab, "n1");
      assert.equal(rules.length, 4);
      assert.ok(rules.every((r) => r.endsWith("-j DROP") && !r.includes(lab.hostAddress)));

      await lab.heal();
      assert.equal(lab.describe(), "healed");
      for (const n of lab.names) assert.deepEqual(await chainRules(lab, n), []);
      assert.deepEqual(await reach(lab, [...MESH, ...HOST_TO_ALL]), [
        ...expectAll(MESH, "ok"),
        ...expectAll(HOST_TO_ALL, "ok"),
      ]);
    }),
});

Deno.test({
  name: "netns: partition into groups, then Jepsen's bridge replaces it",
  ignore,
  fn: () =>
    withLab(["n1", "n2", "n3"], async (lab) => {
      await lab.partition([["n1"], ["n2", "n3"]]);
      assert.deepEqual(
        await reach(lab, [["n1", "n2"], ["n3", "n1"], ["n2", "n3"], ["host", "n1"]]),
        [
          "n1->n2: timeout",
          "n3->n1: timeout",
          "n2->n3: ok",
          "host->n1: ok",
        ],
      );

      // No heal in between: bridge replaces the partition.
      await lab.bridge(["n1"], "n2", ["n3"]);
      assert.equal(lab.describe(), "n1 <-/-> n3");
      assert.deepEqual(await reach(lab, [...MESH, ...HOST_TO_ALL]), [
        "n1->n2: ok",
        "n2->n1: ok",
        "n1->n3: timeout",
        "n3->n1: timeout",
        "n2->n3: ok",
        "n3->n2: ok",
        ...expectAll(HOST_TO_ALL, "ok"),
      ]);

      // A node named in no group is a group of its own.
      await lab.partition([["n1", "n2"]]);
      assert.equal(lab.describe(), "n1 <-/-> n3, n2 <-/-> n3");
      await assert.rejects(() => lab.partition([["n1"], ["n1", "n2"]]), /two groups/);
      await assert.rejects(() => lab.cut("n1", "nx"), /unknown node/);
    }),
});

Deno.test({
  name: "netns: cutOneWay drops packets one way: TCP fails both ways, UDP flows the other way",
  ignore,
  fn: () =>
    withLab(["n1", "n2", "n3"], async (lab) => {
      const udp: Proc[] = [];
      try {
        for (const n of ["n1", "n2"]) {
          udp.push(new Proc(lab.wrap(n, [python, "-c", UDP_LISTENER, lab.address(n), `${PORT}`])));
        }
        for (const p of udp) assert.ok(await p.waitFor("ready", 5000));
        await lab.cutOneWay("n1", "n2");
        assert.equal(lab.describe(), "n1 -/-> n2");
        assert.deepEqual(await chainRules(lab, "n1"), [
          `-A ${CHAOS_CHAIN} -d ${lab.address("n2")}/32 -j DROP`,
        ]);
        assert.deepEqual(await chainRules(lab, "n2"), [
          `-A ${CHAOS_CHAIN} -s ${lab.address("n1")}/32 -j DROP`,
        ]);
        assert.deepEqual(await chainRules(lab, "n3"), []);
        assert.deepEqual(
          await reach(lab, [["n1", "n2"], ["n2", "n1"], ["n1", "n3"], ["host", "n2"]]),
          [
            "n1->n2: timeout", // the SYN is lost
            "n2->n1: timeout", // the SYN arrives, the SYN-ACK is lost
            "n1->n3: ok",
            "host->n2: ok",
          ],
        );
        const send = (from: string, to: string) =>
          execCommand(lab.wrap(from, [
            "bash",
            "-c",
            'echo "$0" > "/dev/udp/$1/$2"',
            `hello-${from}`,
            lab.address(to),
            `${PORT}`,
          ]));
        assert.equal((await send("n2", "n1")).code, 0);
        // The DROP in the sender's own OUTPUT chain is not silent locally: sendto() fails
        // with EPERM (TCP instead retransmits, so connects and writes just hang).
        const lost = await send("n1", "n2");
        assert.notEqual(lost.code, 0);
        assert.match(lost.stderr, /Operation not permitted/);
        assert.ok(await udp[0].waitFor(`hello-n2 from ${lab.address("n2")}`, 2000));
        assert.equal(await udp[1].waitFor("hello-n1", 700), false, "n1 -> n2 UDP got through");

        await lab.heal();
        assert.equal((await send("n1", "n2")).code, 0);
        assert.ok(await udp[1].waitFor("hello-n1", 2000), "healed n1 -> n2 UDP is lost");
      } finally {
        await Promise.all(udp.map((p) => p.stop()));
      }
    }),
});

async function leftovers(prefix: string): Promise<string[]> {
  const links = await runCommand(["ip", "-o", "link"]);
  const netns = await runCommand(["ip", "netns", "list"]);
  return [...links.split("\n"), ...netns.split("\n")].filter((l) => l.includes(prefix));
}

Deno.test({
  name: "netns: close deletes every namespace, veth and the bridge, even mid-fault; twice is fine",
  ignore,
  fn: async () => {
    const lab = await NetLab.create(["a", "b", "c"]);
    try {
      const prefix = lab.namespace("a").replace(/a$/, "");
      assert.match(prefix, /^koi-[0-9a-f]{6}-$/);
      const res = lab.resources();
      // The bridge, 3 veths (interface names: at most 15 characters) and 3 namespaces.
      assert.equal(res.length, 7);
      assert.ok(res.every((n) => n.startsWith(prefix)));
      const links = res.filter((r) => !lab.names.some((n) => lab.namespace(n) === r));
      assert.equal(links.length, 4);
      assert.ok(links.every((l) => l.length <= 15), `${links}`);
      assert.equal((await leftovers(prefix)).length, 7);
      await lab.cut("a", "b");
      await lab.close();
      assert.deepEqual(await leftovers(prefix), []);
      assert.deepEqual(lab.resources(), []);
      await lab.close();
      await assert.rejects(() => lab.heal(), /closed/);
    } finally {
      await lab.close();
    }
  },
});

Deno.test({
  name: "netns: a failure halfway through create deletes what it made",
  ignore,
  fn: async () => {
    // An over-long interface name fails at the first veth, after the bridge and a namespace.
    const err = await NetLab.create(["a", "b"], { ifname: "x".repeat(20) }).then(
      () => null,
      (e: Error) => e,
    );
    assert.ok(err !== null, "create should fail");
    assert.match(err.message, /ip -batch/);
    const prefix = err.message.match(/\((koi-[0-9a-f]{6}-)\*\)/)?.[1];
    assert.ok(prefix !== undefined, err.message);
    assert.deepEqual(await leftovers(prefix), []);
  },
});

Deno.test({
  name: "netns: create skips a random subnet that is already configured on the host",
  ignore,
  fn: async () => {
    // An empty bridge (ours, deleted below; this kernel has no dummy links) occupies `taken`.
    const suffix = crypto.randomUUID().slice(0, 6);
    const dummy = `koi-${suffix}-d`;
    const taken = 1000 + Math.floor(Math.random() * 500);
    const free = taken + 1;
    const cidr = (i: number, host: number) => `10.${200 + (i >> 8)}.${i & 255}.${host}`;
    await runCommand(["ip", "link", "add", dummy, "type", "bridge"]);
    let lab: NetLab | null = null;
    try {
      await runCommand(["ip", "addr", "add", `${cidr(taken, 1)}/24`, "dev", dummy]);
      const picks = [taken, free];
      lab = await NetLab.create(["a"], {
        random: () => ((picks.shift() ?? Math.random() * 2048) + 0.5) / 2048,
      });
      assert.equal(lab.subnet, `${cidr(free, 0)}/24`);
      assert.equal(picks.length, 0);
    } finally {
      await lab?.close();
      await runCommand(["ip", "link", "del", dummy]);
    }
  },
});

Deno.test({
  name: "netns: the PID of a wrapped command is the program itself, in the node's namespace",
  ignore,
  fn: async () => {
    const lab = await NetLab.create(["n1"]);
    let child: Deno.ChildProcess | null = null;
    try {
      const sleep = (await runCommand(["bash", "-c", "command -v sleep"])).trim();
      child = new Deno.Command(lab.wrap("n1", [sleep, "30"])[0], {
        args: lab.wrap("n1", [sleep, "30"]).slice(1),
        stdin: "null",
        stdout: "null",
        stderr: "null",
      }).spawn();
      const pid = child.pid;
      // Until `ip` has called exec, /proc/<pid>/exe is ip; poll for the switch.
      const deadline = Date.now() + 5000;
      let exe = "";
      while (Date.now() < deadline) {
        exe = await Deno.realPath(`/proc/${pid}/exe`);
        if (!exe.endsWith("/ip")) break;
        await new Promise((r) => setTimeout(r, 10));
      }
      assert.equal(exe, await Deno.realPath(sleep));
      assert.equal((await Deno.readTextFile(`/proc/${pid}/comm`)).trim(), "sleep");
      const netnsOf = async (path: string) => (await Deno.stat(path)).ino;
      const inside = await netnsOf(`/proc/${pid}/ns/net`);
      assert.notEqual(inside, await netnsOf("/proc/self/ns/net"));
      assert.equal(inside, await netnsOf(`/run/netns/${lab.namespace("n1")}`));
      // Signals to that PID reach sleep itself: SIGSTOP stops it, SIGKILL ends it.
      child.kill("SIGSTOP");
      const stateDeadline = Date.now() + 2000;
      let state = "";
      while (Date.now() < stateDeadline && state !== "T") {
        state = (await Deno.readTextFile(`/proc/${pid}/stat`)).split(") ")[1][0];
      }
      assert.equal(state, "T");
      child.kill("SIGKILL");
      const status = await child.status;
      child = null;
      assert.equal(status.signal, "SIGKILL");
    } finally {
      if (child !== null) {
        try {
          child.kill("SIGKILL");
        } catch {
          // already exited
        }
        await child.status;
      }
      await lab.close();
    }
  },
});

Deno.test({
  name: "netns: timings of a 6-node lab (create, partition, heal, close)",
  ignore,
  fn: async () => {
    const names = ["a", "b", "c", "d", "e", "f"];
    const t0 = performance.now();
    const lab = await NetLab.create(names);
    const times: Record<string, number> = { create: performance.now() - t0 };
    try {
      let t = performance.now();
      await lab.partition([["a", "b", "c"], ["d", "e", "f"]]);
      times.partition = performance.now() - t;
      for (const n of names) assert.equal((await chainRules(lab, n)).length, 6);
      t = performance.now();
      await lab.isolate("a");
      times.isolate = performance.now() - t;
      assert.equal((await chainRules(lab, "a")).length, 10);
      assert.equal((await chainRules(lab, "b")).length, 2);
      t = performance.now();
      await lab.heal();
      times.heal = performance.now() - t;
      for (const n of names) assert.deepEqual(await chainRules(lab, n), []);
    } finally {
      const t = performance.now();
      await lab.close();
      times.close = performance.now() - t;
    }
    console.log(
      "netns timings (ms):",
      Object.entries(times).map(([k, v]) => `${k} ${v.toFixed(1)}`).join(", "),
    );
    assert.ok(times.partition < 2000 && times.heal < 2000, JSON.stringify(times));
  },
});
