// Browser test of what a technician reads (issue items 4-8): the integration form's help links
// and its marked failing key, a device page (GB, UTC dates with their age, OS support in words,
// client and Intune links), a run's tenants with their time, and phones: at 390 px the clients
// and a run's tenants stack their cells, so no table scrolls sideways and a remedy reads at full
// width. playwright-core drives Debian's chromium against `memsync serve` and `memsync sim`
// (127.0.0.1 port 0). Screenshots of each page at 1440 and 390 px go to $ARTIFACT_DIR
// (default: artifacts/ beside the memsync binary), named detail-*.png.
import path from "node:path";
import { ART, apiClient, check, finish, launchContext, memsyncEnv, run, signIn, simControl, startServe,
  startSim, stopAll, waitRuns, workdir } from "./lib.mjs";

const dir = workdir("detail");
// Today's dates (no --epoch): the device page's ages are those of a live world.
const { env: simEnv, root: simRoot } = await startSim(dir, ["--tenants", "4", "--devices", "12", "--apps-per-device", "2", "--seed", "21"]);
const env = memsyncEnv(dir, simEnv, { MEMSYNC_VALIDATE_SAMPLE: "2" });

const { base, password: pw } = await startServe(env, dir);
const key = run(env, dir, "apikey", "create", "--name", "e2e", "--scope", "read").trim();
const api = apiClient(base, key);

// One customer tenant without the sync app: its client and run row carry a remedy.
const tenants = (await (await fetch(simRoot + "/_sim/world")).json()).tenants;
await simControl(simRoot, { op: "set_tenant", tenant: tenants[1].id, consented: false });

const ctx = await launchContext(dir, { width: 1440, height: 900 });
try {
  const page = await ctx.newPage();
  const shot = (name) => page.screenshot({ path: path.join(ART, "detail-" + name + ".png"), fullPage: true });
  // Both widths of the current page: 1440 and 390 px.
  const shots = async (name) => {
    await page.setViewportSize({ width: 1440, height: 900 });
    await shot(name + "-1440");
    await page.setViewportSize({ width: 390, height: 844 });
    await shot(name + "-390");
    await page.setViewportSize({ width: 1440, height: 900 });
  };
  // At 390 px: nothing wider than the screen, and no table scrolls inside its frame.
  const narrow = async (p, what) => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(base + p);
    const o = await page.evaluate(() => {
      const page = document.documentElement.scrollWidth - window.innerWidth;
      const wraps = [...document.querySelectorAll(".tablewrap")].map((w) => w.scrollWidth - w.clientWidth);
      const remedies = [...document.querySelectorAll(".remedy")].map((r) => r.getBoundingClientRect().right - window.innerWidth);
      return { page, wrap: Math.max(0, ...wraps), remedy: Math.max(-1, ...remedies), n: remedies.length };
    });
    check(o.page <= 1, `no page-wide horizontal scroll at 390 px on ${what} (${o.page})`);
    check(o.wrap <= 1, `no table scrolls sideways at 390 px on ${what} (${o.wrap})`);
    check(o.remedy <= 1, `remedies fit the screen at 390 px on ${what} (${o.n}, ${o.remedy})`);
    await page.setViewportSize({ width: 1440, height: 900 });
    return o;
  };

  await signIn(page, base, "admin", pw);

  // The form: each value links to the served setup guide; a wrong key is marked, the rest kept.
  await page.goto(base + "/integrations");
  const field = (label) => page.locator("#add-integration label", { hasText: label }).locator("input");
  check(await page.locator("#add-integration a.help").count() >= 5, "each value links to where to find it");
  const help = await page.getAttribute("#add-integration label:has(input[name=sync_app_secret]) a.help", "href");
  await field("Microsoft Partner Account ID").fill(simEnv.MEMSYNC_SIM_PARTNER_TENANT_ID);
  await field("Microsoft Partner App ID").fill(simEnv.MEMSYNC_SIM_PARTNER_APP_ID);
  await field("Microsoft Partner App Key").fill(simEnv.MEMSYNC_SIM_PARTNER_APP_SECRET);
  await field("Microsoft Sync App ID").fill(simEnv.MEMSYNC_SIM_SYNC_APP_ID);
  await field("Microsoft Sync App Key").fill("not-the-key");
  await Promise.all([page.waitForNavigation(), page.click("#add-integration button[type=submit]")]);
  check(await page.locator("label.invalid input[name=sync_app_secret]").count() === 1, "the wrong key is marked");
  check(await field("Microsoft Partner App ID").inputValue() === simEnv.MEMSYNC_SIM_PARTNER_APP_ID,
    "the values that passed stay filled");
  await shots("integration-failed");
  await field("Microsoft Sync App Key").fill(simEnv.MEMSYNC_SIM_SYNC_APP_SECRET);
  await Promise.all([page.waitForNavigation(), page.click("#add-integration button[type=submit]")]);
  check((await page.textContent("#checks-sampled")).includes("Checked 2 of 4 customer tenants"),
    "the result says how many tenants were sampled");
  await page.goto(base + help);
  check(await page.locator("li#microsoft-sync-app-key").count() === 1, "the help link lands on its value");
  await shots("help-setup");

  await waitRuns(api, 1);
  const runs = (await api("/api/v1/sync-runs")).data;

  // A device as a technician reads it.
  const dev = (await api("/api/v1/assets/hardware?page_size=100")).data.find((a) => a.storage.total_bytes > 0);
  await page.goto(base + "/assets/" + dev.id);
  const fields = await page.textContent("#asset-fields");
  check(/\d+(\.\d)? GB/.test(fields) && !fields.includes(String(dev.storage.total_bytes)), "storage in GB");
  check(/\d{4}-\d\d-\d\d \d\d:\d\d UTC/.test(fields) && / ago/.test(fields), "dates with their zone and age");
  check(/supported until|past support since|no end date announced|unknown/.test(await page.textContent("#os-support")),
    "the OS support status in words");
  check((await page.getAttribute("#asset-client", "href")) === "/clients/" + dev.client.id, "the client is a link");
  check((await page.getAttribute("#open-in-intune", "href")).endsWith("/mdmDeviceId/" + dev.source.intune_device_id),
    "Open in Intune links to the device");
  await shots("device");
  await narrow("/assets/" + dev.id, "the device page");

  // The run: every tenant with its time, the failing one with its remedy; phones stack it.
  await page.goto(base + "/runs/" + runs[0].id);
  check(await page.locator("#run-tenants tr[data-state=done]").count() === 4, "the run lists its tenants");
  check(await page.locator("#run-tenants td[data-label=Time]").filter({ hasText: /\d/ }).count() === 4,
    "each tenant has its duration");
  await shots("run");
  const r = await narrow("/runs/" + runs[0].id, "the run page");
  check(r.n === 1, "the run page shows the failing tenant's remedy");
  await shots("clients");
  const c = await narrow("/clients", "the clients page");
  check(c.n === 1, "the clients page shows the failing client's remedy");
  await page.goto(base + "/clients");
  await shots("clients");
} finally {
  await ctx.close();
  stopAll();
}
finish();
