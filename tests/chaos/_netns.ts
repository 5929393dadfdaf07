/**
 * A network lab for chaos tests: every node runs in its own Linux network namespace, attached
 * to a private bridge in the host namespace, so faults can cut links between node processes
 * with iptables (real partitions, as in Jepsen), while clients and the admin stay in the host
 * namespace and reach every node through the bridge.
 *
 * One lab (all names carry a random per-run tag, so runs never collide and leftovers are easy
 * to spot with `ip netns list | grep ^koi-` and `ip -o link | grep koi-`):
 *
 * - bridge `koi-<tag>-br` in the host namespace with address `10.A.B.1/24`, where `10.A.B.0/24`
 *   is a random /24 of 10.200.0.0/13 that no host address or route overlaps;
 * - per node a namespace `koi-<tag>-<name>` with `lo` up and `eth0` = `10.A.B.(i+2)/24`, peer
 *   of the veth `koi-<tag>-v<i>`, a port of the bridge;
 * - per namespace an iptables chain `KOI_CHAOS` (table filter) jumped to first from INPUT and
 *   OUTPUT. A cut from X to Y is `-j DROP` in X's chain for `-d Y` and in Y's for `-s X`.
 *
 * DROP means no RST and no ICMP: the peer sees silence. The sender's own kernel knows,
 * though: a UDP `sendto()` dropped in OUTPUT fails with EPERM, while TCP just retransmits, so
 * connects and writes hang (koi talks HTTP over TCP). Only IPv4 between node addresses is
 * cut: the host address (`.1`) always passes, and so do ARP and IPv6 link-local traffic.
 * Node-to-node frames cross the host bridge; with br_netfilter active
 * (`net.bridge.bridge-nf-call-iptables` = 1) they may also traverse the host's FORWARD chain,
 * so a host FORWARD policy DROP (as Docker sets) could cut nodes apart: the first test would
 * show it. (Not seen here: the host FORWARD counters stayed at 0.)
 *
 * @module
 */

/** The iptables chain, in every lab namespace, that holds the fault rules. */
export const CHAOS_CHAIN = "KOI_CHAOS";
const DEFAULT_TIMEOUT_MS = 10_000;
const SUBNETS = 2048; // /24 networks in 10.200.0.0/13
const NODE_NAME = /^[A-Za-z0-9_-]{1,32}$/;
/** Creates the chain and jumps to it first from INPUT and OUTPUT. (With iptables-nft,
 * `:CHAIN` under `--noflush` also flushes an existing chain.) */
const CHAIN_SETUP = `*filter\n:${CHAOS_CHAIN} - [0:0]\n-I INPUT 1 -j ${CHAOS_CHAIN}\n` +
  `-I OUTPUT 1 -j ${CHAOS_CHAIN}\nCOMMIT\n`;

/** Whether {@linkcode NetLab} can be used here, and if not, why. */
export type NetLabAvailability = { ok: true } | { ok: false; reason: string };

/** Options of {@linkcode NetLab.create}. */
export interface NetLabOptions {
  /** Per-command timeout in ms (default 10 000); a command that takes longer is killed. */
  commandTimeoutMs?: number;
  /** Name of the interface inside each namespace (default `eth0`). */
  ifname?: string;
  /** Random source for the subnet choice only (default `Math.random`); for tests. */
  random?: () => number;
}

/** Runs `argv`, feeding it `stdin` if given, and resolves to its exit code (128 + signal if
 * killed) and decoded output whatever the code; throws if the program cannot start or runs
 * longer than `timeoutMs` (default 10 s; it is then killed). */
export async function execCommand(
  argv: string[],
  options: { stdin?: string; timeoutMs?: number } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const signal = AbortSignal.timeout(timeoutMs);
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(argv[0], {
      args: argv.slice(1),
      stdin: options.stdin === undefined ? "null" : "piped",
      stdout: "piped",
      stderr: "piped",
      signal,
    }).spawn();
  } catch (e) {
    throw new Error(`cannot run \`${argv.join(" ")}\`: ${message(e)}`);
  }
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    // A child that exits without reading breaks the pipe; its exit status tells why.
    await writer.write(new TextEncoder().encode(options.stdin)).catch(() => {});
    await writer.close().catch(() => {});
  }
  const out = await child.output();
  if (signal.aborted) throw new Error(`\`${argv.join(" ")}\` timed out after ${timeoutMs} ms`);
  const text = new TextDecoder();
  return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}

/** Like {@linkcode execCommand}, but throws (with the command line and its stderr) unless
 * the command exits 0; returns its stdout. */
export async function runCommand(
  argv: string[],
  options: { stdin?: string; timeoutMs?: number } = {},
): Promise<string> {
  const r = await execCommand(argv, options);
  if (r.code === 0) return r.stdout;
  throw new Error(`\`${argv.join(" ")}\` exited ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`);
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** 6 random hex digits (24 random bits: the first ones of a v4 UUID). */
function randomTag(): string {
  return crypto.randomUUID().slice(0, 6);
}

/** IPv4 networks `[address, prefix length, interface ("" for a route)]` on the host. */
async function hostNetworks(timeoutMs: number): Promise<Array<[number, number, string]>> {
  const toInt = (ip: string) => ip.split(".").reduce((acc, p) => acc * 256 + Number(p), 0);
  const [addrs, routes] = await Promise.all([
    runCommand(["ip", "-4", "-o", "addr"], { timeoutMs }),
    runCommand(["ip", "-4", "route", "show", "table", "all"], { timeoutMs }),
  ]);
  return [
    ...addrs.split("\n").flatMap((l): Array<[number, number, string]> => {
      const m = l.match(/^\d+:\s+(\S+)\s+inet (\d+\.\d+\.\d+\.\d+)\/(\d+)/);
      return m ? [[toInt(m[2]), Number(m[3]), m[1]]] : [];
    }),
    // "10.1.0.0/16 via …", "local 127.0.0.1 dev lo …"; "default …" matches nothing.
    ...routes.split("\n").flatMap((l): Array<[number, number, string]> => {
      const m = l.match(/^(?:[a-z]+\s+)?(\d+\.\d+\.\d+\.\d+)(?:\/(\d+))?\s/);
      return m ? [[toInt(m[1]), Number(m[2] ?? 32), ""]] : [];
    }),
  ];
}

function overlaps(a: number, aLen: number, b: number, bLen: number): boolean {
  const shift = 32 - Math.min(aLen, bLen);
  return shift >= 32 || Math.floor(a / 2 ** shift) === Math.floor(b / 2 ** shift);
}

/** Names of all host links and named network namespaces. */
async function hostNames(timeoutMs: number): Promise<Set<string>> {
  const [links, netns] = await Promise.all([
    runCommand(["ip", "-o", "link"], { timeoutMs }),
    runCommand(["ip", "netns", "list"], { timeoutMs }),
  ]);
  return new Set([
    ...links.split("\n").flatMap((l) => l.match(/^\d+:\s+([^:@\s]+)/)?.[1] ?? []),
    ...netns.split("\n").flatMap((l) => l.match(/^(\S+)/)?.[1] ?? []),
  ]);
}

/**
 * Namespaces joined by a bridge, with faults that drop packets between nodes. Create with
 * {@linkcode NetLab.create}; always {@linkcode NetLab.close} it (or `await using`). Fault
 * methods run one at a time; each reloads the chain of every namespace whose rules change,
 * atomically per namespace but not across them, so a new cut may briefly hold one way only.
 * `partition`, `isolate` and `bridge` replace the current cuts; `cut`, `cutOneWay` add.
 */
export class NetLab implements AsyncDisposable {
  /** The node names, in creation order. */
  readonly names: readonly string[];
  /** The lab's subnet, e.g. `10.203.17.0/24`. */
  readonly subnet: string;
  /** The bridge's address in the host namespace (`.1`); traffic to and from it is never cut.
   * Clients in the host namespace reach nodes from it. */
  readonly hostAddress: string;
  readonly #tag = randomTag();
  readonly #timeoutMs: number;
  readonly #addresses = new Map<string, string>();
  /** Host links (bridge, veths) and namespaces created, until deleted. */
  #links: string[] = [];
  #netns: string[] = [];
  /** Directed cuts as `from\0to`: packets from `from` to `to` are dropped. */
  #cuts = new Set<string>();
  /** Rules loaded per node (absent: unknown, reload next time). */
  readonly #loaded = new Map<string, string>();
  #queue: Promise<unknown> = Promise.resolve();
  #closed = false;

  private constructor(names: string[], subnet: number, timeoutMs: number) {
    this.names = [...names];
    const base = `10.${200 + (subnet >> 8)}.${subnet & 255}`;
    this.subnet = `${base}.0/24`;
    this.hostAddress = `${base}.1`;
    this.#timeoutMs = timeoutMs;
    names.forEach((n, i) => this.#addresses.set(n, `${base}.${i + 2}`));
  }

  /** Checks that this process can build labs: Linux, root, `ip` and `iptables` present, and
   * a throwaway namespace gets a veth, a bridge and a working iptables chain. */
  static async available(): Promise<NetLabAvailability> {
    const no = (reason: string): NetLabAvailability => ({ ok: false, reason });
    if (Deno.build.os !== "linux") return no(`network namespaces need Linux, not ${Deno.build.os}`);
    const uid = (() => {
      try {
        return Deno.uid();
      } catch (e) {
        return message(e); // no --allow-sys
      }
    })();
    if (uid !== 0) return no(`not root (uid: ${uid})`);
    for (const tool of ["ip -V", "iptables --version", "iptables-restore -V"]) {
      const why = await runCommand(tool.split(" ")).then(() => "", message);
      if (why) return no(`${tool.split(" ")[0]} is missing or broken: ${why}`);
    }
    const ns = `koi-${randomTag()}-probe`;
    try {
      await runCommand(["ip", "netns", "add", ns]);
    } catch (e) {
      return no(`\`ip netns add\` fails (no CAP_SYS_ADMIN?): ${message(e)}`);
    }
    try {
      await runCommand(["ip", "-n", ns, "-batch", "-"], {
        stdin: "link add pa type veth peer name pb\nlink add pbr type bridge\n",
      });
      const exec = ["ip", "netns", "exec", ns];
      await runCommand([...exec, "iptables-restore", "--noflush"], { stdin: CHAIN_SETUP });
      await runCommand([...exec, "iptables", "-S", CHAOS_CHAIN]);
      return { ok: true };
    } catch (e) {
      return no(`veth, bridge or iptables do not work in a namespace: ${message(e)}`);
    } finally {
      await execCommand(["ip", "netns", "del", ns]).catch(() => {});
    }
  }

  /**
   * Builds a lab with one namespace per name (1 to 200 unique names of 1–32 `[A-Za-z0-9_-]`).
   * Picks a random /24 that no host address or route overlaps, and picks again if another
   * lab took it meanwhile. On failure, deletes what it made and throws.
   */
  static async create(names: string[], options: NetLabOptions = {}): Promise<NetLab> {
    const bad = names.find((n) => !NODE_NAME.test(n));
    if (bad !== undefined) throw new Error(`NetLab: bad node name ${JSON.stringify(bad)}`);
    if (new Set(names).size !== names.length) throw new Error("NetLab: duplicate node names");
    if (names.length < 1 || names.length > 200) throw new Error("NetLab: need 1 to 200 nodes");
    const timeoutMs = options.commandTimeoutMs ?? DEFAULT_TIMEOUT_MS;
    for (let attempt = 0; attempt < 20; attempt++) {
      const index = Math.min(SUBNETS - 1, Math.floor((options.random ?? Math.random)() * SUBNETS));
      const lab = new NetLab(names, index, timeoutMs);
      const net = (10 * 256 + 200) * 65536 + index * 256;
      if ((await hostNetworks(timeoutMs)).some(([a, len]) => overlaps(a, len, net, 24))) continue;
      try {
        if (await lab.#build(options.ifname ?? "eth0", net)) return lab;
      } catch (e) {
        const also = await lab.close().then(() => "", (c) => `; cleanup failed: ${message(c)}`);
        throw new Error(`NetLab.create (koi-${lab.#tag}-*) failed: ${message(e)}${also}`);
      }
      await lab.close();
    }
    throw new Error("NetLab.create: 20 random subnets of 10.200.0.0/13 were all taken");
  }

  /** Creates the resources; false if the subnet turned out to be taken concurrently. */
  async #build(ifname: string, net: number): Promise<boolean> {
    const t = this.#timeoutMs;
    const prefix = `koi-${this.#tag}-`;
    if ([...await hostNames(t)].some((n) => n.startsWith(prefix))) return false; // tag in use
    // The names are unique to this lab (checked just above), so recording them all before
    // creating them is safe: close() deletes whichever exist. (`ip -batch` often exits
    // without saying which line failed.)
    const bridge = `${prefix}br`;
    this.#links.push(bridge);
    let batch = `link add ${bridge} type bridge\nlink set ${bridge} up\n` +
      `addr add ${this.hostAddress}/24 dev ${bridge}\n`;
    this.names.forEach((n, i) => {
      const [ns, veth] = [this.namespace(n), `${prefix}v${i}`];
      this.#netns.push(ns);
      this.#links.push(veth);
      batch += `netns add ${ns}\nlink add ${veth} type veth peer name ${ifname} netns ${ns}\n` +
        `link set ${veth} master ${bridge} up\n`;
    });
    await runCommand(["ip", "-batch", "-"], { stdin: batch, timeoutMs: t });
    // Another lab may have configured the same subnet between our check and now.
    const nets = await hostNetworks(t);
    if (nets.some(([a, len, dev]) => dev && dev !== bridge && overlaps(a, len, net, 24))) {
      return false;
    }
    await settle(this.names.map(async (n) => {
      await runCommand(["ip", "-n", this.namespace(n), "-batch", "-"], {
        stdin: `link set lo up\naddr add ${this.address(n)}/24 dev ${ifname}\n` +
          `link set ${ifname} up\n`,
        timeoutMs: t,
      });
      await runCommand(this.wrap(n, ["iptables-restore", "--noflush"]), {
        stdin: CHAIN_SETUP,
        timeoutMs: t,
      });
      this.#loaded.set(n, "");
    }));
    return true;
  }

  /** The node's IPv4 address; the node must listen on it. (A node cannot reach the host's
   * 127.0.0.1: each namespace has its own loopback.) */
  address(name: string): string {
    const address = this.#addresses.get(name);
    if (address === undefined) throw new Error(`NetLab: unknown node ${JSON.stringify(name)}`);
    return address;
  }

  /** The node's network namespace name (for `ip -n` / `ip netns exec`). */
  namespace(name: string): string {
    this.address(name);
    return `koi-${this.#tag}-${name}`;
  }

  /** Names of the host links (bridge, veths) and namespaces this lab currently owns. */
  resources(): string[] {
    return [...this.#links, ...this.#netns];
  }

  /**
   * The argv that runs `cmd` in the node's namespace: `ip netns exec <ns> ...cmd`. `ip netns
   * exec` enters the namespace and exec()s `cmd` (it forks only with `-all`), so the PID of a
   * `Deno.Command` spawned with it is `cmd`'s own: SIGKILL, SIGSTOP, SIGCONT reach the program.
   * Environment and cwd are kept; `cmd` also gets a private mount namespace (/sys remounted).
   */
  wrap(name: string, cmd: string[]): string[] {
    return ["ip", "netns", "exec", this.namespace(name), ...cmd];
  }

  /** Replaces all cuts: nodes in different groups exchange no packets. A node named in no
   * group is a group of its own (cut from all others); a node in two groups throws. */
  async partition(groups: string[][]): Promise<void> {
    const groupOf = new Map<string, number>();
    groups.forEach((g, i) =>
      g.forEach((n) => {
        this.address(n);
        if (groupOf.has(n)) throw new Error(`NetLab.partition: ${n} is in two groups`);
        groupOf.set(n, i);
      })
    );
    this.names.forEach((n, i) => groupOf.set(n, groupOf.get(n) ?? groups.length + i));
    const cuts = new Set<string>();
    for (const a of this.names) {
      for (const b of this.names) if (groupOf.get(a) !== groupOf.get(b)) cuts.add(`${a}\0${b}`);
    }
    await this.#serial(() => this.#write(cuts, false));
  }

  /** Replaces all cuts: `name` alone vs every other node. */
  async isolate(name: string): Promise<void> {
    await this.partition([[name], this.names.filter((n) => n !== name)]);
  }

  /** Replaces all cuts with Jepsen's bridge: `left` and `right` cannot talk to each other,
   * both talk to `middle`; nodes named nowhere stay connected to everyone. */
  async bridge(left: string[], middle: string, right: string[]): Promise<void> {
    const all = [...left, middle, ...right];
    all.forEach((n) => this.address(n));
    if (new Set(all).size !== all.length) throw new Error("NetLab.bridge: a node is named twice");
    const cuts = new Set<string>();
    for (const a of left) for (const b of right) cuts.add(`${a}\0${b}`).add(`${b}\0${a}`);
    await this.#serial(() => this.#write(cuts, false));
  }

  /** Adds a cut between `a` and `b`, both directions. */
  async cut(a: string, b: string): Promise<void> {
    await this.#add([[a, b], [b, a]]);
  }

  /** Adds a one-way cut: packets from `from` to `to` are dropped (in `from`'s OUTPUT and
   * `to`'s INPUT), packets from `to` to `from` pass. UDP flows one way; TCP breaks both ways,
   * since a SYN from `to` arrives but the SYN-ACK (and every later ACK) is dropped. */
  async cutOneWay(from: string, to: string): Promise<void> {
    await this.#add([[from, to]]);
  }

  /** Removes every rule the lab added: flushes `KOI_CHAOS` in every namespace. */
  async heal(): Promise<void> {
    await this.#serial(() => this.#write(new Set(), true));
  }

  /** The current cuts for logs, e.g. `n1 <-/-> n2, n3 -/-> n1`, or `healed`. */
  describe(): string {
    const parts: string[] = [];
    this.names.forEach((a, i) =>
      this.names.slice(i + 1).forEach((b) => {
        const ab = this.#cuts.has(`${a}\0${b}`), ba = this.#cuts.has(`${b}\0${a}`);
        if (ab || ba) {
          parts.push(ab && ba ? `${a} <-/-> ${b}` : ab ? `${a} -/-> ${b}` : `${b} -/-> ${a}`);
        }
      })
    );
    return parts.length === 0 ? "healed" : parts.join(", ");
  }

  /** Deletes exactly the resources this lab created, then checks they are gone; idempotent.
   * It kills no process: stop nodes first (a deleted namespace lives on, cut off, as long as a
   * process is in it). Fault methods reject after close. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#queue;
    if (this.#links.length + this.#netns.length === 0) return;
    // Deleting a veth deletes both ends at once (deleting only its namespace would free the
    // pair later, asynchronously). Each link deletion waits for RCU, hence in parallel.
    const timeoutMs = this.#timeoutMs;
    await Promise.allSettled([
      ...this.#links.map((l) => execCommand(["ip", "link", "del", l], { timeoutMs })),
      execCommand(["ip", "-force", "-batch", "-"], {
        stdin: this.#netns.map((ns) => `netns del ${ns}\n`).join(""),
        timeoutMs,
      }),
    ]);
    const left = await hostNames(timeoutMs);
    this.#links = this.#links.filter((l) => left.has(l));
    this.#netns = this.#netns.filter((ns) => left.has(ns));
    const remaining = this.resources();
    if (remaining.length > 0) throw new Error(`NetLab.close: still present: ${remaining}`);
  }

  /** Closes the lab: `await using lab = await NetLab.create(...)`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #add(pairs: Array<[string, string]>): Promise<void> {
    if (this.address(pairs[0][0]) === this.address(pairs[0][1])) {
      throw new Error(`NetLab: cannot cut ${pairs[0][0]} off itself`);
    }
    await this.#serial(() =>
      this.#write(new Set([...this.#cuts, ...pairs.map((p) => p.join("\0"))]), false)
    );
  }

  /** Runs `fn` after every earlier fault call (failed or not); rejects once closed. */
  #serial(fn: () => Promise<void>): Promise<void> {
    if (this.#closed) return Promise.reject(new Error("NetLab: closed"));
    const p = this.#queue.then(fn);
    this.#queue = p.catch(() => {});
    return p;
  }

  /** Reloads, in parallel, the chain of each namespace whose rules for `cuts` differ from the
   * loaded ones (of all if `force`), each with one atomic iptables-restore. */
  async #write(cuts: Set<string>, force: boolean): Promise<void> {
    this.#cuts = cuts;
    await settle(this.names.map(async (n) => {
      let rules = "";
      for (const [from, to] of [...cuts].map((c) => c.split("\0"))) {
        if (from === n) rules += `-A ${CHAOS_CHAIN} -d ${this.address(to)}/32 -j DROP\n`;
        if (to === n) rules += `-A ${CHAOS_CHAIN} -s ${this.address(from)}/32 -j DROP\n`;
      }
      if (!force && this.#loaded.get(n) === rules) return;
      this.#loaded.delete(n);
      await runCommand(this.wrap(n, ["iptables-restore", "--noflush"]), {
        stdin: `*filter\n-F ${CHAOS_CHAIN}\n${rules}COMMIT\n`,
        timeoutMs: this.#timeoutMs,
      });
      this.#loaded.set(n, rules);
    }));
  }
}

/** Awaits all of `jobs` (so none still runs afterwards), then throws their errors, if any. */
async function settle(jobs: Promise<unknown>[]): Promise<void> {
  const errors = (await Promise.allSettled(jobs)).flatMap((r) =>
    r.status === "rejected" ? [message(r.reason)] : []
  );
  if (errors.length > 0) throw new Error(errors.join("; "));
}
