/**
 * End to end: a node whose data directory fills up, or turns read-only, while it leads a
 * 3-node cluster of real processes and clients write (docs/disk_failures.md). The directory is
 * a small tmpfs (or an ext4 image on one) mounted by the test; without root, or where mount
 * fails, each test says why and skips.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ProcessCluster, waitFor } from "./_cluster.ts";

const ID = "a1"; // the node whose disk fails

function run(cmd: string, args: string[]): { ok: boolean; output: string } {
  const out = new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).outputSync();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  return { ok: out.success, output: text.trim() };
}

/** Why these tests cannot run here, or undefined. */
function cannotMount(): string | undefined {
  if (Deno.build.os !== "linux") return `mounting needs Linux, this is ${Deno.build.os}`;
  if (Deno.uid() !== 0) return "mounting a tmpfs needs root";
  return undefined;
}

/** Writes keys through the nodes, round robin, until stopped; records what was acknowledged. */
class Writer {
  readonly acked = new Map<string, string>();
  #on = true;
  #done: Promise<void>;

  constructor(c: ProcessCluster, prefix: string) {
    const ids = [...c.nodes.keys()];
    this.#done = (async () => {
      for (let i = 0; this.#on; i++) {
        const key = `${prefix}${i}`;
        const value = `v${i}`;
        for (let attempt = 0; this.#on && attempt < 50; attempt++) {
          const id = ids[(i + attempt) % ids.length];
          try {
            const r = await c.fetch(id, `/v1/kv/${key}`, { method: "PUT", body: value });
            await r.body?.cancel();
            if (r.ok) {
              this.acked.set(key, value);
              break;
            }
          } catch {
            // the node is down or slow: the next one
          }
          await new Promise((r) => setTimeout(r, 20)); // pacing between retries, not a sync
        }
      }
    })();
  }

  async stop(): Promise<void> {
    this.#on = false;
    await this.#done;
  }
}

async function health(c: ProcessCluster, id: string): Promise<{ status: number; code?: string }> {
  const r = await c.fetch(id, "/healthz");
  const body = await r.json();
  return { status: r.status, code: body.error?.code };
}

/** Makes `id` the leader (a transfer from the current one). */
async function makeLeader(c: ProcessCluster, id: string): Promise<void> {
  await waitFor(async () => {
    const leader = await c.leader();
    if (leader === id) return true;
    const r = await c.fetch(leader, "/v1/leader", {
      method: "POST",
      body: JSON.stringify({ to: id }),
    });
    await r.body?.cancel();
    return (await c.status(id)).role === "leader";
  }, `${id} leads`);
}

/** Reads every acknowledged key back from `id` (linearizable). */
async function assertAllRead(c: ProcessCluster, id: string, acked: Map<string, string>) {
  for (const [key, value] of acked) {
    let got: string | undefined;
    await waitFor(async () => {
      const r = await c.fetch(id, `/v1/kv/${key}`);
      got = r.status === 200 ? await r.text() : (await r.body?.cancel(), undefined);
      return r.status === 200 || r.status === 404;
    }, `reading ${key}`);
    assert.equal(got, value, `acknowledged ${key} lost (${c.logs()})`);
  }
}

/** Another node than `id` leads, and writes are acknowledged through it. */
async function othersLead(c: ProcessCluster, writer: Writer): Promise<void> {
  await waitFor(
    async () => {
      for (const n of c.nodes.keys()) {
        if (n !== ID && (await c.status(n)).role === "leader") return true;
      }
      return false;
    },
    "another node leads",
    30_000,
  );
  const before = writer.acked.size;
  await waitFor(() => writer.acked.size >= before + 20, "writes acknowledged meanwhile", 30_000);
}

async function restartAll(c: ProcessCluster): Promise<void> {
  for (const id of c.nodes.keys()) await c.stop(id);
  c.startAll();
  await c.leader(30_000);
}

Deno.test("e2e disk failure: the leader's data dir fills up; the cluster goes on, nothing acknowledged is lost, the node recovers", async () => {
  const reason = cannotMount();
  if (reason !== undefined) {
    console.log(`SKIPPED: ${reason}`);
    return;
  }
  const c = await ProcessCluster.create(["a1", "a2", "a3"]);
  const dir = c.node(ID).data;
  await Deno.mkdir(dir, { recursive: true });
  const mount = run("mount", ["-t", "tmpfs", "-o", "size=20m", "tmpfs", dir]);
  if (!mount.ok) {
    console.log(`SKIPPED: cannot mount a tmpfs on ${dir}: ${mount.output}`);
    await c.close();
    return;
  }
  let writer: Writer | undefined;
  try {
    c.startAll();
    await makeLeader(c, ID);
    writer = new Writer(c, "k");
    await waitFor(() => writer!.acked.size >= 20, "writes acknowledged");
    // Fill the tmpfs.
    const filler = await Deno.open(`${dir}/filler`, { write: true, create: true });
    try {
      for (let size = 1 << 20; size >= 512;) {
        try {
          await filler.write(new Uint8Array(size));
        } catch {
          size >>= 1; // full at this size: top it off with smaller writes
        }
      }
    } finally {
      filler.close();
    }
    await waitFor(async () => (await health(c, ID)).code === "disk_failed", `${ID} unhealthy`);
    await othersLead(c, writer);
    const status = await c.status(ID) as unknown as { disk?: { state: string; error?: string } };
    assert.equal(status.disk?.state, "failed");
    assert.match(status.disk?.error ?? "", /full/);
    assert.equal(c.node(ID).child !== undefined, true);

    await Deno.remove(`${dir}/filler`);
    await waitFor(async () => (await health(c, ID)).status === 200, `${ID} healthy again`, 30_000);
    await writer.stop();
    const leader = await c.leader();
    const commit = (await c.status(leader)).commit;
    await waitFor(async () => (await c.status(ID)).applied >= commit, `${ID} catches up`);
    await assertAllRead(c, ID, writer.acked);
    await restartAll(c);
    await assertAllRead(c, await c.leader(), writer.acked);
    assert.match(c.node(ID).output + c.logs(), /takes writes again|catches up/);
  } finally {
    await writer?.stop();
    for (const id of c.nodes.keys()) await c.stop(id, true);
    const umount = run("umount", [dir]);
    if (!umount.ok) console.log(`cannot unmount ${dir}: ${umount.output}`);
    await c.close();
  }
});

Deno.test("e2e disk failure: the leader's file system turns read-only; the cluster goes on, the node stays failed until restarted on a repaired disk", async () => {
  const reason = cannotMount();
  if (reason !== undefined) {
    console.log(`SKIPPED: ${reason}`);
    return;
  }
  const c = await ProcessCluster.create(["a1", "a2", "a3"]);
  const dir = c.node(ID).data;
  const backing = `${c.dir}/backing`;
  await Deno.mkdir(dir, { recursive: true });
  await Deno.mkdir(backing, { recursive: true });
  const mounted: string[] = [];
  let loop = "";
  let writer: Writer | undefined;
  const setup = (): string | undefined => {
    // An ext4 image on a tmpfs (no real disk is written), mounted errors=remount-ro.
    const tmpfs = run("mount", ["-t", "tmpfs", "-o", "size=64m", "tmpfs", backing]);
    if (!tmpfs.ok) return `cannot mount a tmpfs: ${tmpfs.output}`;
    mounted.push(backing);
    const image = `${backing}/disk.img`;
    Deno.writeFileSync(image, new Uint8Array(0));
    Deno.truncateSync(image, 48 << 20);
    const losetup = run("losetup", ["-f", "--show", image]);
    if (!losetup.ok) return `no loop device: ${losetup.output}`;
    loop = losetup.output;
    const mkfs = run("mkfs.ext4", ["-q", loop]);
    if (!mkfs.ok) return `cannot make an ext4: ${mkfs.output}`;
    const mount = run("mount", ["-o", "errors=remount-ro", loop, dir]);
    if (!mount.ok) return `cannot mount the ext4: ${mount.output}`;
    mounted.push(dir);
    return undefined;
  };
  try {
    const failed = setup();
    if (failed !== undefined) {
      console.log(`SKIPPED: ${failed}`);
      return;
    }
    c.startAll();
    await makeLeader(c, ID);
    writer = new Writer(c, "r");
    await waitFor(() => writer!.acked.size >= 20, "writes acknowledged");
    // `mount -o remount,ro` is refused while SQLite holds its files open for writing (EBUSY);
    // what a real disk error does is the kernel's emergency remount, which ext4's debug knob
    // triggers as an I/O error would.
    const remount = run("mount", ["-o", "remount,ro", dir]);
    if (remount.ok) {
      console.log("mount -o remount,ro succeeded");
    } else {
      console.log(`mount -o remount,ro refused (${remount.output}): using ext4 trigger_fs_error`);
      const name = loop.replace("/dev/", "");
      Deno.writeTextFileSync(`/sys/fs/ext4/${name}/trigger_fs_error`, "koi disk failure test");
    }
    await waitFor(async () => (await health(c, ID)).code === "disk_failed", `${ID} unhealthy`);
    await othersLead(c, writer);
    assert.equal(c.node(ID).child !== undefined, true, "the node runs on");
    await writer.stop();
    const acked = writer.acked;
    // The repair: stop the node, unmount, check the file system, mount it again, restart.
    await c.stop(ID);
    const umount = run("umount", [dir]);
    assert.ok(umount.ok, umount.output);
    mounted.pop();
    run("e2fsck", ["-fy", loop]); // exits 1 when it fixed something
    const mount = run("mount", ["-o", "errors=remount-ro", loop, dir]);
    assert.ok(mount.ok, mount.output);
    mounted.push(dir);
    c.start(ID);
    await waitFor(async () => (await health(c, ID)).status === 200, `${ID} healthy again`, 30_000);
    const leader = await c.leader();
    const commit = (await c.status(leader)).commit;
    await waitFor(async () => (await c.status(ID)).applied >= commit, `${ID} catches up`);
    await assertAllRead(c, leader, acked);
    await restartAll(c);
    await assertAllRead(c, await c.leader(), acked);
  } finally {
    await writer?.stop();
    for (const id of c.nodes.keys()) await c.stop(id, true);
    for (const m of mounted.reverse()) {
      const umount = run("umount", [m]);
      if (!umount.ok) console.log(`cannot unmount ${m}: ${umount.output}`);
      if (m === dir && loop !== "") run("losetup", ["-d", loop]);
    }
    if (loop !== "" && !mounted.includes(dir)) run("losetup", ["-d", loop]);
    await c.close();
  }
});
