// What every browser test starts from: a work folder, `memsync sim` and `memsync serve` on
// 127.0.0.1 port 0 (their addresses read from the files they write), the CLI, checks that count
// failures, and Debian's Chromium through playwright-core. A test imports what it needs and ends
// with stopAll() in a finally and then finish(), which sets the exit status.
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
export const { chromium } = require("playwright-core");

export const BIN = process.env.MEMSYNC_BIN || "memsync";
// Screenshots go to $ARTIFACT_DIR, by default artifacts/ beside the memsync binary.
export const ART = process.env.ARTIFACT_DIR || path.join(path.dirname(path.resolve(BIN)), "artifacts");
fs.mkdirSync(ART, { recursive: true });

const procs = [];
let failures = 0;

export function check(cond, what) {
  if (!cond) {
    failures++;
    console.log("FAIL:", what);
  } else {
    console.log("ok:", what);
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// A fresh folder per run; the prefix names the test in /tmp.
export function workdir(name) {
  return fs.mkdtempSync(path.join(os.tmpdir(), "memsync-e2e-" + name + "-"));
}

// The contents of file once a started process has written it (its URL or settings).
export async function waitFile(file, proc, what) {
  for (let i = 0; i < 600; i++) {
    if (fs.existsSync(file) && fs.readFileSync(file, "utf8").trim()) return fs.readFileSync(file, "utf8");
    if (proc.exitCode !== null) throw new Error(what + " exited");
    await sleep(50);
  }
  throw new Error(what + " did not start");
}

export function parseEnv(text) {
  const env = {};
  for (const line of text.split("\n")) {
    const m = line.match(/^(?:export )?([A-Z_]+)='?(.*?)'?$/);
    if (m) env[m[1]] = m[2];
  }
  return env;
}

// `memsync sim` with these arguments; answers its settings (MEMSYNC_*_URL, the apps' ids and
// secrets) and the origin of its control routes (/_sim/...).
export async function startSim(dir, args) {
  const file = path.join(dir, "sim.env");
  const sim = spawn(BIN, ["sim", "--listen", "127.0.0.1:0", "--env-file", file, ...args], { stdio: "ignore" });
  procs.push(sim);
  const env = parseEnv(await waitFile(file, sim, "sim"));
  return { env, root: new URL(env.MEMSYNC_GRAPH_URL).origin };
}

// The environment memsync runs with against the simulator: its own database in dir, the
// simulator's endpoints, no secrets inherited from the caller.
export function memsyncEnv(dir, simEnv, extra = {}) {
  const env = { ...process.env, MEMSYNC_DB: path.join(dir, "memsync.db"), ...extra };
  for (const k of ["MEMSYNC_LOGIN_URL", "MEMSYNC_GRAPH_URL", "MEMSYNC_PARTNER_CENTER_URL"]) env[k] = simEnv[k];
  delete env.MEMSYNC_PARTNER_APP_SECRET;
  delete env.MEMSYNC_SYNC_APP_SECRET;
  return env;
}

// One CLI command that must succeed; answers its standard output.
export function run(env, dir, ...args) {
  const r = spawnSync(BIN, args, { env, cwd: dir });
  if (r.status !== 0) throw new Error("memsync " + args.join(" ") + ": " + r.stderr.toString());
  return r.stdout.toString();
}

// `memsync integration add` with the simulator's two apps (secrets through 0600 files).
export function addIntegration(env, dir, simEnv, ...extra) {
  const pf = path.join(dir, "partner.secret");
  const sf = path.join(dir, "sync.secret");
  fs.writeFileSync(pf, simEnv.MEMSYNC_SIM_PARTNER_APP_SECRET + "\n", { mode: 0o600 });
  fs.writeFileSync(sf, simEnv.MEMSYNC_SIM_SYNC_APP_SECRET + "\n", { mode: 0o600 });
  return run(env, dir, "integration", "add", "--partner-tenant-id", simEnv.MEMSYNC_SIM_PARTNER_TENANT_ID,
    "--partner-app-id", simEnv.MEMSYNC_SIM_PARTNER_APP_ID, "--partner-app-secret-file", pf,
    "--sync-app-id", simEnv.MEMSYNC_SIM_SYNC_APP_ID, "--sync-app-secret-file", sf, ...extra);
}

// `memsync serve` on port 0; answers its base URL and the admin password of its first start.
export async function startServe(env, dir, args = []) {
  const urlFile = path.join(dir, "serve.url");
  const outFile = path.join(dir, "serve.out");
  const out = fs.openSync(outFile, "w");
  const serve = spawn(BIN, ["serve", "--listen", "127.0.0.1:0", "--url-file", urlFile, ...args],
    { env, cwd: dir, stdio: ["ignore", out, out] });
  procs.push(serve);
  const base = (await waitFile(urlFile, serve, "serve")).trim();
  const m = fs.readFileSync(outFile, "utf8").match(/with password (\S+)/);
  return { base, password: m ? m[1] : null, proc: serve };
}

// An API GET with a key that must answer 200; answers the JSON.
export function apiClient(base, key) {
  return async (p) => {
    const r = await fetch(base + p, { headers: { "x-api-key": key } });
    if (r.status !== 200) throw new Error(p + " -> " + r.status);
    return r.json();
  };
}

const CHROMIUM = {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run"],
};

// A persistent context on a fresh profile in dir (passed as --user-data-dir).
export function launchContext(dir, viewport) {
  return chromium.launchPersistentContext(path.join(dir, "chromium-profile"), { ...CHROMIUM, viewport });
}

export function launchBrowser() {
  return chromium.launch(CHROMIUM);
}

// Stops every process started here (call it in the test's finally, so an exception still
// stops them and then fails the test).
export function stopAll() {
  for (const p of procs) p.kill("SIGTERM");
}

// After stopAll(): prints the summary and exits 1 on any failed check.
export function finish() {
  console.log(failures ? failures + " check(s) failed" : "all ok");
  process.exit(failures ? 1 : 0);
}

// shots(name): the current page at 1440 px and at 390 px, as PREFIX-NAME-1440.png and -390.png,
// checking that nothing scrolls page-wide sideways at 390 px.
export function shooter(page, prefix) {
  return async (name) => {
    await page.setViewportSize({ width: 1440, height: 900 });
    await page.screenshot({ path: path.join(ART, prefix + "-" + name + "-1440.png"), fullPage: true });
    await page.setViewportSize({ width: 390, height: 844 });
    const o = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    check(o <= 1, "no page-wide horizontal scroll at 390 px on " + name + " (" + o + ")");
    await page.screenshot({ path: path.join(ART, prefix + "-" + name + "-390.png"), fullPage: true });
    await page.setViewportSize({ width: 1440, height: 900 });
  };
}

// Signs in with a password on /login.
export async function signIn(page, base, name, password) {
  await page.goto(base + "/login");
  await page.fill("input[name=name]", name);
  await page.fill("input[name=password]", password);
  await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
}

// The simulator's control route (/_sim/control): one operation or a list; answers its JSON.
export async function simControl(root, op) {
  const r = await fetch(root + "/_sim/control", { method: "POST", body: JSON.stringify(op),
    headers: { "Content-Type": "application/json" } });
  return r.json();
}

// The sync runs once there are at least n and none is running (api from apiClient).
export async function waitRuns(api, n) {
  for (let i = 0; i < 600; i++) {
    const runs = (await api("/api/v1/sync-runs")).data;
    if (runs.length >= n && runs.every((r) => r.status !== "running")) return runs;
    await sleep(100);
  }
  throw new Error("sync did not finish");
}

// The common start of a read-only walk: the simulator with simArgs, an integration synced once
// from the CLI, serve, and a read key's API client.
export async function startSynced(name, simArgs) {
  const dir = workdir(name);
  const sim = await startSim(dir, simArgs);
  const env = memsyncEnv(dir, sim.env, { MEMSYNC_VALIDATE_SAMPLE: "2", MEMSYNC_NO_PROGRESS: "1" });
  addIntegration(env, dir, sim.env, "--no-sync");
  run(env, dir, "sync");
  const { base, password } = await startServe(env, dir);
  const key = run(env, dir, "apikey", "create", "--name", "e2e", "--scope", "read").trim();
  return { dir, sim, env, base, password, api: apiClient(base, key) };
}
