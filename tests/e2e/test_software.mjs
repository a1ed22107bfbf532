// Browser test of software across clients: playwright-core drives Debian's chromium against
// `memsync serve` and `memsync sim` (127.0.0.1 port 0). Walks: software -> across clients ->
// search a product -> its versions -> the devices across clients -> a device. Screenshots of
// each page at 1440 and 390 px go to $ARTIFACT_DIR (default: artifacts/ beside the binary).
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { chromium } = require("playwright-core");

const BIN = process.env.MEMSYNC_BIN || "memsync";
const ART = process.env.ARTIFACT_DIR || path.join(path.dirname(path.resolve(BIN)), "artifacts");
fs.mkdirSync(ART, { recursive: true });
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "memsync-e2e-sw-"));
const procs = [];
let failures = 0;

function check(cond, what) {
  if (!cond) {
    failures++;
    console.log("FAIL:", what);
  } else {
    console.log("ok:", what);
  }
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

async function waitFile(file, proc, what) {
  for (let i = 0; i < 600; i++) {
    if (fs.existsSync(file) && fs.readFileSync(file, "utf8").trim()) return fs.readFileSync(file, "utf8");
    if (proc.exitCode !== null) throw new Error(what + " exited");
    await sleep(50);
  }
  throw new Error(what + " did not start");
}

function parseEnv(text) {
  const env = {};
  for (const line of text.split("\n")) {
    const m = line.match(/^(?:export )?([A-Z_]+)='?(.*?)'?$/);
    if (m) env[m[1]] = m[2];
  }
  return env;
}

function run(env, ...args) {
  const r = spawnSync(BIN, args, { env, cwd: dir });
  if (r.status !== 0) throw new Error("memsync " + args.join(" ") + ": " + r.stderr.toString());
  return r.stdout.toString();
}

const simEnvFile = path.join(dir, "sim.env");
const sim = spawn(BIN, ["sim", "--listen", "127.0.0.1:0", "--env-file", simEnvFile, "--tenants", "3",
  "--devices", "20", "--apps-per-device", "8", "--seed", "5"], { stdio: "ignore" });
procs.push(sim);
const simEnv = parseEnv(await waitFile(simEnvFile, sim, "sim"));
const env = { ...process.env, MEMSYNC_DB: path.join(dir, "memsync.db"), MEMSYNC_VALIDATE_SAMPLE: "2",
  MEMSYNC_NO_PROGRESS: "1" };
for (const k of ["MEMSYNC_LOGIN_URL", "MEMSYNC_GRAPH_URL", "MEMSYNC_PARTNER_CENTER_URL"]) env[k] = simEnv[k];
delete env.MEMSYNC_PARTNER_APP_SECRET;
delete env.MEMSYNC_SYNC_APP_SECRET;

// The integration and a sync from the CLI; the browser only reads.
const pf = path.join(dir, "partner.secret");
const sf = path.join(dir, "sync.secret");
fs.writeFileSync(pf, simEnv.MEMSYNC_SIM_PARTNER_APP_SECRET + "\n", { mode: 0o600 });
fs.writeFileSync(sf, simEnv.MEMSYNC_SIM_SYNC_APP_SECRET + "\n", { mode: 0o600 });
run(env, "integration", "add", "--partner-tenant-id", simEnv.MEMSYNC_SIM_PARTNER_TENANT_ID,
  "--partner-app-id", simEnv.MEMSYNC_SIM_PARTNER_APP_ID, "--partner-app-secret-file", pf,
  "--sync-app-id", simEnv.MEMSYNC_SIM_SYNC_APP_ID, "--sync-app-secret-file", sf, "--no-sync");
run(env, "sync");

const urlFile = path.join(dir, "serve.url");
const serveOut = fs.openSync(path.join(dir, "serve.out"), "w");
const serve = spawn(BIN, ["serve", "--listen", "127.0.0.1:0", "--url-file", urlFile],
  { env, cwd: dir, stdio: ["ignore", serveOut, serveOut] });
procs.push(serve);
const base = (await waitFile(urlFile, serve, "serve")).trim();
const pw = fs.readFileSync(path.join(dir, "serve.out"), "utf8").match(/with password (\S+)/)[1];
const key = run(env, "apikey", "create", "--name", "e2e", "--scope", "read").trim();

async function api(p) {
  const r = await fetch(base + p, { headers: { "x-api-key": key } });
  if (r.status !== 200) throw new Error(p + " -> " + r.status);
  return r.json();
}

const ctx = await chromium.launchPersistentContext(path.join(dir, "chromium-profile"), {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  viewport: { width: 1440, height: 900 },
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run"],
});
try {
  const page = await ctx.newPage();
  // Each page at 1440 px and at 390 px (no page-wide sideways scroll there).
  const shots = async (name) => {
    await page.setViewportSize({ width: 1440, height: 900 });
    await page.screenshot({ path: path.join(ART, "software-" + name + "-1440.png"), fullPage: true });
    await page.setViewportSize({ width: 390, height: 844 });
    const o = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    check(o <= 1, "no page-wide horizontal scroll at 390 px on " + name + " (" + o + ")");
    await page.screenshot({ path: path.join(ART, "software-" + name + "-390.png"), fullPage: true });
    await page.setViewportSize({ width: 1440, height: 900 });
  };

  await page.goto(base + "/login");
  await page.fill("input[name=name]", "admin");
  await page.fill("input[name=password]", pw);
  await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);

  // Software -> across clients.
  await page.goto(base + "/software");
  await Promise.all([page.waitForNavigation(), page.click("#across-clients")]);
  check(page.url().endsWith("/software/products"), "the software page links to across clients");
  check(await page.locator("#products tbody tr").count() > 0, "products are listed");
  await shots("products");

  // Where is Chrome installed? One search.
  await page.fill("#product-search", "chrome");
  await Promise.all([page.waitForNavigation(), page.click("form.toolbar button[type=submit]")]);
  const rows = page.locator("#products tbody tr");
  const names = await rows.locator("td:first-child").allTextContents();
  check(names.length > 0 && names.every((n) => n.toLowerCase().includes("chrome")),
    "the search lists Chrome products only: " + names.join(", "));
  const want = (await api("/api/v1/assets/products?search=chrome")).data.find((p) => p.name === "Google Chrome");
  check(want && want.client_count >= 2, "Chrome is on several clients (API)");
  const row = rows.filter({ hasText: "Google Chrome" }).first();
  const cells = await row.locator("td").allTextContents();
  check(cells[3] === String(want.client_count) && cells[4] === String(want.device_count),
    "the row shows the product's clients and devices: " + cells.join(" | "));
  await shots("search");

  // Its versions.
  await Promise.all([page.waitForNavigation(), row.locator("a").first().click()]);
  check(page.url().endsWith("/software/products/" + want.id), "the product page opens");
  const one = (await api("/api/v1/assets/products/" + want.id)).data;
  const vrows = page.locator("#product-versions tbody tr");
  check(await vrows.count() === one.versions.length, "every version is listed");
  const first = await vrows.first().locator("td").allTextContents();
  check(first[0] === one.versions[0].version && first[1] === String(one.versions[0].client_count) &&
    first[2] === String(one.versions[0].device_count), "versions show clients and devices: " + first.join(" | "));
  await shots("product");

  // The devices across clients, for the newest version.
  await Promise.all([page.waitForNavigation(), vrows.first().locator("a").click()]);
  const drows = page.locator("#product-devices tbody tr");
  check(await drows.count() === Math.min(50, one.versions[0].device_count),
    "the version's devices are listed (" + await drows.count() + ")");
  const clients = new Set(await drows.locator("td:nth-child(2)").allTextContents());
  check(clients.size === one.versions[0].client_count, "the devices come from " + clients.size + " clients");
  await shots("devices");

  // A device.
  const devName = (await drows.first().locator("td").first().textContent()).trim();
  await Promise.all([page.waitForNavigation(), drows.first().locator("a").click()]);
  check(/\/assets\/\d+$/.test(page.url()) && (await page.textContent("h1")).includes(devName),
    "a device opens from the list");
} finally {
  await ctx.close();
  for (const p of procs) p.kill("SIGTERM");
}
console.log(failures ? failures + " check(s) failed" : "all ok");
process.exit(failures ? 1 : 0);
