import assert from "node:assert/strict";
import { FREE_PORTS_LOW, freePorts, portsIn } from "./free_ports_config.ts";

Deno.test("freePorts: distinct ports, none of those to avoid", () => {
  // About a tenth of the range to avoid: a picker that ignored it would hit one of them
  // among 60 picks but for a chance of about 1 in 500.
  const avoid = new Set<number>();
  for (let i = 0; i < 10; i++) for (const p of freePorts(500)) avoid.add(p);
  assert.ok(avoid.size > 2_000, `${avoid.size} ports to avoid`);
  const picked = freePorts(60, avoid);
  assert.equal(new Set(picked).size, 60);
  assert.deepEqual(picked.filter((p) => avoid.has(p)), [], "an avoided port came back");
});

Deno.test("portsIn: every quoted host:port of a deployment file", () => {
  const toml = `[admin]\nhttp = "127.0.0.1:4000"\n[[clusters.nodes]]\nraft = "[::1]:4001"\n` +
    `data = "data/a1"\nsecret = "x:y"\n`;
  assert.deepEqual(portsIn(toml), [4000, 4001]);
});

Deno.test("freePorts: below the OS's ephemeral range, where no outgoing connection takes them", () => {
  const low = Number(
    Deno.readTextFileSync("/proc/sys/net/ipv4/ip_local_port_range").trim().split(/\s+/)[0],
  );
  const picked = freePorts(200);
  assert.deepEqual(picked.filter((p) => p < FREE_PORTS_LOW || p >= low), []);
  // Each really was free: bind them all again.
  const listeners = picked.map((port) => Deno.listen({ hostname: "127.0.0.1", port }));
  for (const l of listeners) l.close();
});

Deno.test("freePorts: never a port fetch refuses (10080), which a client could not reach", () => {
  // Seen in CI: a fake node drawn at 10080 made a client test fail with "Requests to port
  // 10080 are blocked". The draw lands on 10080 first, then on the port after it.
  const high = Number(
    Deno.readTextFileSync("/proc/sys/net/ipv4/ip_local_port_range").trim().split(/\s+/)[0],
  ) - 1;
  const span = high - FREE_PORTS_LOW + 1;
  const draws = [10_080, 10_081].map((p) => (p - FREE_PORTS_LOW + 0.5) / span);
  let i = 0;
  assert.deepEqual(freePorts(1, [], () => draws[Math.min(i++, 1)]), [10_081]);
});
