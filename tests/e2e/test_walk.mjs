// The walk a technician makes (issue 19's must-show), in one browser test asserting the numbers
// at each step: overview -> a card -> the filtered hardware list -> a device -> its client page
// -> exclude that client -> the overview without it (and with it again after include); and
// software: search a product -> its versions -> the devices across clients. playwright-core
// drives Debian's chromium against `memsync serve` and `memsync sim` (127.0.0.1 port 0).
// Screenshots of each page at 1440 and 390 px go to $ARTIFACT_DIR (default: artifacts/ beside
// the memsync binary), named walk-*.png.
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
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "memsync-e2e-walk-"));
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
const sim = spawn(BIN, ["sim", "--listen", "127.0.0.1:0", "--env-file", simEnvFile, "--tenants", "4",
  "--devices", "25", "--apps-per-device", "6", "--seed", "11"], { stdio: "ignore" });
procs.push(sim);
const simEnv = parseEnv(await waitFile(simEnvFile, sim, "sim"));
const env = { ...process.env, MEMSYNC_DB: path.join(dir, "memsync.db"), MEMSYNC_VALIDATE_SAMPLE: "2",
  MEMSYNC_NO_PROGRESS: "1" };
for (const k of ["MEMSYNC_LOGIN_URL", "MEMSYNC_GRAPH_URL", "MEMSYNC_PARTNER_CENTER_URL"]) env[k] = simEnv[k];
delete env.MEMSYNC_PARTNER_APP_SECRET;
delete env.MEMSYNC_SYNC_APP_SECRET;

// The integration and a sync from the CLI; the browser walks what they stored.
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
  // The current page at 1440 px and at 390 px (no page-wide sideways scroll there).
  const shots = async (name) => {
    await page.setViewportSize({ width: 1440, height: 900 });
    await page.screenshot({ path: path.join(ART, "walk-" + name + "-1440.png"), fullPage: true });
    await page.setViewportSize({ width: 390, height: 844 });
    const o = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    check(o <= 1, "no page-wide horizontal scroll at 390 px on " + name + " (" + o + ")");
    await page.screenshot({ path: path.join(ART, "walk-" + name + "-390.png"), fullPage: true });
    await page.setViewportSize({ width: 1440, height: 900 });
  };
  const cardN = async (fig) =>
    Number((await page.locator(`.cards a.card[data-figure=${fig}] strong`).textContent()).trim());
  const listTotal = async () => {
    const m = (await page.textContent(".pager")).match(/(\d+) total/);
    return m ? Number(m[1]) : -1;
  };
  const sum = (rows, fig) => rows.reduce((n, r) => n + r[fig], 0);

  await page.goto(base + "/login");
  await page.fill("input[name=name]", "admin");
  await page.fill("input[name=password]", pw);
  await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);

  // 1. The overview: its cards are the API's figures over every client.
  const ins = (await api("/api/v1/insights")).data;
  await page.goto(base + "/");
  check(await page.locator("#insight tbody tr").count() === ins.length,
    `the overview has a row per client (${ins.length})`);
  const before = {};
  for (const fig of ["devices", "unsupported_os", "stale"]) {
    before[fig] = await cardN(fig);
    check(before[fig] === sum(ins, fig), `overview card ${fig}: ${before[fig]} = the API's ${sum(ins, fig)}`);
  }
  check(before.unsupported_os > 0, "some devices run an OS past its support");
  await shots("overview");

  // 2. A card -> the filtered hardware list, as many rows as the card says.
  await Promise.all([page.waitForNavigation(), page.click(".cards a.card[data-figure=unsupported_os]")]);
  check(page.url().includes("os_support=past") && page.url().includes("included=true"),
    "the card opens the hardware list of devices past OS support: " + page.url());
  check(await listTotal() === before.unsupported_os,
    `the list has the card's ${before.unsupported_os} devices (${await listTotal()})`);
  const listed = page.locator("#assets tbody tr");
  check(await listed.count() === Math.min(50, before.unsupported_os), "the rows of its first page");
  await shots("list");

  // 3. A device of that list.
  const firstLink = listed.first().locator("a[href^='/assets/']").first();
  const devId = Number((await firstLink.getAttribute("href")).split("/").pop());
  const dev = (await api("/api/v1/assets/hardware/" + devId)).data;
  await Promise.all([page.waitForNavigation(), firstLink.click()]);
  check((await page.textContent("h1")).includes(dev.name), "the device page opens: " + dev.name);
  check(/past support since/.test(await page.textContent("#os-support")),
    "the device is past its OS support, in words");
  await shots("device");

  // 4. Its client page.
  await Promise.all([page.waitForNavigation(), page.click("#asset-client")]);
  const cid = dev.client.id;
  const client = (await api("/api/v1/clients/" + cid)).data;
  check(page.url().endsWith("/clients/" + cid) && (await page.textContent("#client-name")).trim() === client.name,
    "the device's client page opens: " + client.name);
  const row = ins.find((r) => r.client.id === cid);
  const cDev = Number((await page.locator("#client-figures a.card[data-figure=devices] strong").textContent()).trim());
  const cPast = Number((await page.locator("#client-figures a.card[data-figure=unsupported_os] strong").textContent()).trim());
  check(cDev === row.devices && cPast === row.unsupported_os && cPast > 0,
    `the client's figures: ${cDev} devices, ${cPast} past OS support (overview row ${row.devices}, ${row.unsupported_os})`);
  await shots("client");

  // 5. Exclude it: the overview no longer counts it, and each card still equals its list.
  await Promise.all([page.waitForNavigation(), page.click("#client-exclude")]);
  check((await page.textContent("#client-done")).includes("Excluded"), "excluded from its page");
  await shots("client-excluded");
  await page.goto(base + "/");
  check(await page.locator("#insight tbody tr").count() === ins.length - 1 &&
    await page.locator(`#insight a[href="/clients/${cid}"]`).count() === 0,
    "the overview's table has no row for the excluded client");
  for (const fig of ["devices", "unsupported_os", "stale"]) {
    const n = await cardN(fig);
    check(n === before[fig] - row[fig], `card ${fig}: ${n} = ${before[fig]} - the client's ${row[fig]}`);
  }
  await shots("overview-excluded");
  for (const fig of ["devices", "unsupported_os"]) {
    const n = await cardN(fig);
    await Promise.all([page.waitForNavigation(), page.click(`.cards a.card[data-figure=${fig}]`)]);
    check(await listTotal() === n, `after exclude, card ${fig} (${n}) = its list (${await listTotal()})`);
    if (fig === "unsupported_os") await shots("list-excluded");
    await page.goto(base + "/");
  }

  // 6. Include it again: it comes back.
  await page.goto(base + "/clients/" + cid);
  await Promise.all([page.waitForNavigation(), page.click("#client-include")]);
  await page.goto(base + "/");
  check(await page.locator(`#insight a[href="/clients/${cid}"]`).count() === 1 &&
    await cardN("devices") === before.devices, "included again, the overview counts it again");

  // 7. Software: search a product -> its versions -> the devices across clients.
  await page.goto(base + "/software/products");
  await page.fill("#product-search", "chrome");
  await Promise.all([page.waitForNavigation(), page.click("form.toolbar button[type=submit]")]);
  const prow = page.locator("#products tbody tr").filter({ hasText: "Google Chrome" }).first();
  const want = (await api("/api/v1/assets/products?search=chrome")).data.find((p) => p.name === "Google Chrome");
  const pcells = await prow.locator("td").allTextContents();
  check(want && want.client_count >= 2 && pcells[3] === String(want.client_count) &&
    pcells[4] === String(want.device_count),
    `the search finds Chrome on ${want && want.client_count} clients, ${want && want.device_count} devices: ` +
    pcells.join(" | "));
  await shots("software-search");
  await Promise.all([page.waitForNavigation(), prow.locator("a").first().click()]);
  const one = (await api("/api/v1/assets/products/" + want.id)).data;
  const vrows = page.locator("#product-versions tbody tr");
  check(await vrows.count() === one.versions.length, `its ${one.versions.length} versions are listed`);
  const v0 = await vrows.first().locator("td").allTextContents();
  check(v0[0] === one.versions[0].version && v0[1] === String(one.versions[0].client_count) &&
    v0[2] === String(one.versions[0].device_count), "a version's clients and devices: " + v0.join(" | "));
  check(one.versions.reduce((n, v) => n + v.device_count, 0) >= want.device_count,
    "the versions cover the product's devices");
  await shots("software-product");
  await Promise.all([page.waitForNavigation(), vrows.first().locator("a").click()]);
  const drows = page.locator("#product-devices tbody tr");
  check(await drows.count() === Math.min(50, one.versions[0].device_count),
    `the version's ${one.versions[0].device_count} devices are listed (${await drows.count()})`);
  const across = new Set(await drows.locator("td:nth-child(2)").allTextContents());
  check(across.size === one.versions[0].client_count, `across ${across.size} clients`);
  await shots("software-devices");
} finally {
  await ctx.close();
  for (const p of procs) p.kill("SIGTERM");
}
console.log(failures ? failures + " check(s) failed" : "all ok");
process.exit(failures ? 1 : 0);
