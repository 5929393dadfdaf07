/**
 * The admin's status page in a real browser: Debian's `chromium`, driven by `puppeteer-core`.
 * Starts the default deployment (3 clusters of 3 nodes), opens `GET /`, checks that the page
 * shows every cluster and node with the roles the nodes report, kills a leader by its PID and
 * waits for the page (without a reload) to show the new one, and saves a screenshot.
 *
 * The browser is `$KOI_CHROMIUM`, else `chromium` or `chromium-browser` on PATH. Without one
 * the test is ignored and says why (`.ci/run` installs Debian's chromium when it runs as root).
 *
 * @module
 */
import assert from "node:assert/strict";
import puppeteer, { type Browser, type Page } from "puppeteer-core";
import { alive, withAdmin } from "../e2e/_admin.ts";
import { waitFor } from "../e2e/_cluster.ts";
import { connect } from "../../mod.ts";
import { parse, stringify } from "smol-toml";

const ROOT = new URL("../../", import.meta.url).pathname;
/** Where the screenshot goes (the repository's git-ignored tmp/ unless told otherwise). */
const SCREENSHOT = Deno.env.get("KOI_SCREENSHOT") ?? `${ROOT}tmp/dashboard.png`;

function findChromium(): string | undefined {
  const given = Deno.env.get("KOI_CHROMIUM");
  if (given !== undefined && given !== "") return given;
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    for (const name of ["chromium", "chromium-browser"]) {
      try {
        if (Deno.statSync(`${dir}/${name}`).isFile) return `${dir}/${name}`;
      } catch { /* not here */ }
    }
  }
  return undefined;
}

const CHROMIUM = findChromium();
if (CHROMIUM === undefined) {
  console.warn(
    "dashboard browser test SKIPPED: no chromium (set KOI_CHROMIUM, or apt-get install chromium)",
  );
}

/** The page's view of the deployment: per cluster its leader, per node its role. */
interface DrawnView {
  updated: string;
  clusters: { id: string; leader: string; nodes: { id: string; role: string }[] }[];
  balance: string[];
  rates: string[];
  changes: { cluster: string; text: string }[];
}

/** Reads the page's markers (written as browser JavaScript: this file has no DOM types). */
const READ_PAGE = `(() => {
  const all = (sel, root = document) => [...root.querySelectorAll(sel)];
  return {
    updated: document.body.dataset.updated ?? "",
    clusters: all("[data-cluster]").map((c) => ({
      id: c.dataset.cluster,
      leader: c.dataset.leader,
      nodes: all("[data-node]", c).map((n) => ({ id: n.dataset.node, role: n.dataset.role })),
    })),
    balance: all("[data-balance]").map((b) => b.dataset.balance),
    rates: all("[data-rates]").map((r) => r.dataset.rates),
    changes: all("[data-change]").map((r) => ({ cluster: r.dataset.change, text: r.textContent })),
  };
})()`;

function drawn(page: Page): Promise<DrawnView> {
  return page.evaluate(READ_PAGE) as Promise<DrawnView>;
}

Deno.test({
  name: "dashboard (chromium): every cluster and node with its role; a killed leader's successor",
  ignore: CHROMIUM === undefined,
  // puppeteer keeps its DevTools socket and timers past close; the browser is stopped by PID.
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await withAdmin(undefined, async (admin) => {
      let browser: Browser | undefined;
      let browserPid: number | undefined;
      try {
        browser = await puppeteer.launch({
          executablePath: CHROMIUM,
          headless: true,
          // Root in CI: chromium's sandbox needs an unprivileged user. /dev/shm may be small.
          args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        });
        browserPid = browser.process()?.pid;
        const page = await browser.newPage();
        await page.setViewport({ width: 1280, height: 1400 });
        const problems: string[] = [];
        page.on("pageerror", (e) => problems.push(`page error: ${e}`));
        page.on("console", (m) => {
          if (m.type() === "error") problems.push(`console: ${m.text()}`);
        });
        page.on("response", (r) => {
          if (r.status() >= 400) problems.push(`${r.status()} ${r.request().method()} ${r.url()}`);
        });
        await page.goto(`${admin.url}/`, { waitUntil: "load" });

        // Every cluster and node, with the roles the nodes themselves report.
        let api = await admin.clusters();
        await waitFor(
          async () => {
            api = await admin.clusters();
            const view = await drawn(page);
            return JSON.stringify(view.clusters) === JSON.stringify(api.clusters.map((c) => ({
              id: c.id,
              leader: c.leader,
              nodes: c.nodes.map((n) => ({ id: n.id, role: n.status?.role ?? "unreachable" })),
            })));
          },
          "the page to show every cluster and node with the roles of /v1/clusters",
          30_000,
        );
        const first = await drawn(page);
        assert.deepEqual(first.clusters.map((c) => c.id), ["a", "b", "c"]);
        assert.equal(first.clusters.flatMap((c) => c.nodes).length, 9);
        for (const c of first.clusters) {
          assert.equal(
            c.nodes.filter((n) => n.role === "leader").length,
            1,
            `one leader in ${c.id}`,
          );
        }
        assert.deepEqual(first.balance, ["a", "b", "c"], "a balance bar per cluster");
        assert.deepEqual(first.rates, ["a", "b", "c"], "a rates row per cluster");

        // Writes: the page shows every cluster's keys and a write rate, without reloading.
        const client = await connect(admin.url);
        try {
          for (let i = 0; i < 600; i += 50) {
            await Promise.all(Array.from({ length: 50 }, (_, j) => client.put(`k${i + j}`, "v")));
          }
        } finally {
          client.close();
        }
        await waitFor(
          async () => {
            const text = await page.evaluate(
              `document.getElementById("balance").textContent + "|" + ` +
                `document.getElementById("rates").textContent`,
            ) as string;
            const keys = [...text.matchAll(/([\d,]+) keys \(/g)].map((m) =>
              Number(m[1].replace(/,/g, ""))
            );
            return keys.length === 3 && keys.reduce((a, b) => a + b, 0) === 600 &&
              !/all0\.00\.0/.test(text.replace(/\s/g, ""));
          },
          "the page to show 600 keys over the clusters and a non-zero rate",
          30_000,
        );

        // Kill cluster a's leader: the page, without reloading, shows the new leader.
        const a = api.clusters.find((c) => c.id === "a")!;
        const old = a.leader;
        const pid = a.nodes.find((n) => n.id === old)!.pid!;
        const marker = await page.evaluate("globalThis.notReloaded = true");
        assert.equal(marker, true);
        Deno.kill(pid, "SIGKILL");
        await waitFor(
          async () => {
            const view = await drawn(page);
            const ca = view.clusters.find((c) => c.id === "a");
            if (ca === undefined || ca.leader === "" || ca.leader === old) return false;
            return ca.nodes.find((n) => n.id === ca.leader)?.role === "leader";
          },
          `the page to show a new leader of cluster a after killing ${old}`,
          30_000,
        );
        const after = await drawn(page);
        const now = after.clusters.find((c) => c.id === "a")!.leader;
        assert.notEqual(now, old);
        assert.ok(
          after.changes.some((ch) => ch.cluster === "a" && ch.text.includes(now)),
          `the leader changes list ${now}: ${JSON.stringify(after.changes)}`,
        );
        assert.equal(
          await page.evaluate("globalThis.notReloaded"),
          true,
          "the page updated itself without a reload",
        );
        // A reshard (cluster a's load factor 1 -> 2, ideally moving 1/6 of the keys): the page
        // shows its progress and its end.
        // deno-lint-ignore no-explicit-any
        const doc = parse(await Deno.readTextFile(admin.configPath)) as any;
        doc.routing = { ...(doc.routing ?? {}), epoch: 2 };
        doc.clusters[0].load_factor = 2;
        const path = `${admin.dir}/heavier-a.toml`;
        await Deno.writeTextFile(path, stringify(doc));
        const secret = (await Deno.readTextFile(`${admin.dir}/data/admin/secret`)).trim();
        const started = await fetch(`${admin.url}/v1/reshard`, {
          method: "POST",
          headers: { authorization: `Bearer ${secret}` },
          body: JSON.stringify({ path, config: await Deno.readTextFile(path) }),
        });
        assert.equal(started.status, 202, await started.clone().text());
        await started.body?.cancel();
        await waitFor(
          async () =>
            await page.evaluate(`document.querySelector("[data-reshard]")?.dataset.reshard`) ===
              "done",
          "the page to show the reshard done",
          60_000,
        );
        const shown = await page.evaluate(
          `document.getElementById("reshard").textContent`,
        ) as string;
        assert.match(shown, /Epoch 1 → 2/);
        assert.match(shown, /keys moved \([\d.]+% of 600; ideal 16\.7%\)/);
        assert.deepEqual(problems, [], "no script errors and no CSP violations");
        await Deno.mkdir(SCREENSHOT.slice(0, SCREENSHOT.lastIndexOf("/")), { recursive: true });
        await page.screenshot({ path: SCREENSHOT as `${string}.png`, fullPage: true });
        console.log(`dashboard screenshot: ${SCREENSHOT}`);
        assert.ok(Deno.statSync(SCREENSHOT).size > 10_000, "a screenshot with content");
      } finally {
        await browser?.close().catch(() => {});
        if (browserPid !== undefined && alive(browserPid)) Deno.kill(browserPid, "SIGKILL");
      }
    });
  },
});
