// Browser test of the memsync web UI: playwright-core drives Debian's chromium against
// `memsync serve` and `memsync sim`, both on 127.0.0.1 port 0. Screenshots go to
// $ARTIFACT_DIR (default: artifacts/ beside the memsync binary).
import path from "node:path";
import { ART, apiClient, check, finish, launchBrowser, launchContext, memsyncEnv, run, signIn, simControl,
  sleep, startServe, startSim, stopAll, waitRuns, workdir } from "./lib.mjs";

const HOSTILE = "<img src=x onerror=alert(1)>";
const dir = workdir("ui");
const { env: simEnv, root: simRoot } = await startSim(dir, ["--tenants", "3", "--devices", "60", "--apps-per-device", "4", "--seed", "5", "--epoch", "2026-06-01T00:00:00Z"]);
const env = memsyncEnv(dir, simEnv, { MEMSYNC_VALIDATE_SAMPLE: "2" });

const { base, password: pw } = await startServe(env, dir);
const key = run(env, dir, "apikey", "create", "--name", "e2e", "--scope", "read").trim();
const api = apiClient(base, key);

// A fresh profile directory per run (launchPersistentContext passes it as --user-data-dir).
const ctx = await launchContext(dir, { width: 1280, height: 900 });
const dialogs = [];
try {
  const page = await ctx.newPage();
  page.on("dialog", async (d) => { dialogs.push(d.message()); await d.dismiss(); });
  const shot = (name) => page.screenshot({ path: path.join(ART, "ui-" + name + ".png"), fullPage: true });

  // Sign in.
  await page.goto(base + "/assets");
  check(page.url().includes("/login"), "signed-out visit goes to the sign-in page");
  await page.fill("input[name=name]", "admin");
  await page.fill("input[name=password]", pw);
  await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
  check(page.url().endsWith("/assets"), "sign-in lands on hardware");
  check((await page.textContent("main")).includes("No devices yet"), "useful empty state before the first sync");

  // Add the integration with the five values.
  await page.goto(base + "/integrations");
  const field = (label) => page.locator("#add-integration label", { hasText: label }).locator("input");
  await field("Microsoft Partner Account ID").fill(simEnv.MEMSYNC_SIM_PARTNER_TENANT_ID);
  await field("Microsoft Partner App ID").fill(simEnv.MEMSYNC_SIM_PARTNER_APP_ID);
  await field("Microsoft Partner App Key").fill(simEnv.MEMSYNC_SIM_PARTNER_APP_SECRET);
  await field("Microsoft Sync App ID").fill(simEnv.MEMSYNC_SIM_SYNC_APP_ID);
  await field("Microsoft Sync App Key").fill(simEnv.MEMSYNC_SIM_SYNC_APP_SECRET);
  await field("Name").fill("Contoso MSP");
  await Promise.all([page.waitForNavigation(), page.click("#add-integration button[type=submit]")]);
  const notice = await page.textContent(".notice");
  check(notice.includes("Saved"), "integration saved: " + notice.trim().slice(0, 80));
  check(await page.locator("#checks .pill.pass").count() >= 5, "per-check results are shown");
  check(!(await page.content()).includes(simEnv.MEMSYNC_SIM_SYNC_APP_SECRET), "the key is not echoed");
  await shot("integration-saved");

  // Watch the sync finish.
  await page.goto(base + "/runs");
  for (let i = 0; i < 100; i++) {
    if (await page.locator("#runs .pill.ok").count() > 0) break;
    await sleep(300);
    await page.reload();
  }
  check(await page.locator("#runs .pill.ok").count() === 1, "the full sync finished ok");
  await shot("runs");

  // The overview: one row per client, the riskiest first, each linking to its devices.
  await page.click("header.top nav a:text('Overview')");
  const clientsAll = (await api("/api/v1/clients")).data;
  check(await page.locator("#insight tbody tr").count() === clientsAll.length,
    "the overview has a row per client");
  const unsupported = await page.locator("#insight tbody td[data-k=unsupported_os]").allTextContents();
  check(unsupported.map(Number).every((v, i, a) => i === 0 || a[i - 1] >= v),
    "clients with the most devices past OS support come first");
  await shot("overview");

  // A card leads to its devices: the list it opens has as many rows as the card says.
  const card = page.locator(".cards a.card[data-figure=stale]");
  const cardN = Number((await card.locator("strong").textContent()).trim());
  await Promise.all([page.waitForNavigation(), card.click()]);
  check(page.url().includes("stale_days=30"), "the card opens the filtered hardware list");
  check((await page.textContent(".pager")).includes(cardN + " total"),
    `the stale card's ${cardN} devices are the list's total`);
  await shot("assets-from-card");

  // A client's page: figures that link to their lists, exclude and include again.
  const c0 = (await api("/api/v1/clients")).data[0];
  await page.goto(base + "/clients/" + c0.id);
  check((await page.textContent("#client-name")).trim() === c0.name, "the client page names the client");
  check(await page.locator("#client-figures a.card").count() === 7, "the client page has its figures");
  check(await page.locator("#client-devices tbody tr").count() === 10, "the client page lists devices");
  await shot("client");
  await page.setViewportSize({ width: 390, height: 844 });
  await page.reload();
  const cOverflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(cOverflow <= 1, "no page-wide horizontal scroll at 390 px on the client page (" + cOverflow + ")");
  await shot("client-narrow");
  await page.setViewportSize({ width: 1280, height: 900 });
  await page.reload();
  const devCard = page.locator("#client-figures a.card[data-figure=devices]");
  const devN = Number((await devCard.locator("strong").textContent()).trim());
  await Promise.all([page.waitForNavigation(), devCard.click()]);
  check((await page.textContent(".pager")).includes(devN + " total"), "the client's devices card = its list");
  await page.goto(base + "/clients/" + c0.id);
  await Promise.all([page.waitForNavigation(), page.click("#client-exclude")]);
  check((await page.textContent("#client-done")).includes("Excluded"), "exclude from the client page");
  check((await api("/api/v1/clients/" + c0.id)).data.included === false, "the API sees the exclusion");
  await Promise.all([page.waitForNavigation(), page.click("#client-include")]);
  check((await api("/api/v1/clients/" + c0.id)).data.included === true, "included again");

  // Find a device by serial.
  const all = (await api("/api/v1/assets/hardware?page_size=200")).data;
  check(all.length === 180, "180 devices synced");
  // A serial only this device has: the search below must find it alone.
  const dev = all.find((a) => a.serial_number && !a.serial_duplicate);
  await page.goto(base + "/assets");
  await page.fill("input[name=search]", dev.serial_number);
  await Promise.all([page.waitForNavigation(), page.click("form.toolbar button[type=submit]")]);
  const found = await page.locator("#assets tbody tr").allTextContents();
  check(found.some((t) => t.includes(dev.serial_number)), "device found by serial");

  // Filter by client and OS.
  const client = (await api("/api/v1/clients")).data[0];
  const os0 = dev.operating_system.name;
  await page.goto(base + "/assets");
  await Promise.all([page.waitForNavigation(), page.selectOption("select[name=client]", String(client.id))]);
  await Promise.all([page.waitForNavigation(), page.selectOption("select[name=os]", os0)]);
  const want = all.filter((a) => a.client.id === client.id && a.operating_system.name === os0).length;
  const pagerText = await page.textContent(".pager");
  check(pagerText.includes(want + " total"), `client + OS filter shows ${want} devices (${pagerText.trim()})`);
  await shot("assets-filtered");

  // Sort and page.
  await page.goto(base + "/assets");
  await Promise.all([page.waitForNavigation(), page.click("#assets thead a:text('Name')")]);
  const names = await page.locator("#assets tbody tr td:first-child").allTextContents();
  const apiNames = (await api("/api/v1/assets/hardware?sort=name&page_size=50")).data.map((a) => a.name || "—");
  check(JSON.stringify(names) === JSON.stringify(apiNames), "sorted by name like the API");
  await Promise.all([page.waitForNavigation(), page.click("a[rel=next]")]);
  check((await page.textContent(".pager")).includes("page 2 of 4"), "next page");
  const page2 = await page.locator("#assets tbody tr td:first-child").allTextContents();
  const apiPage2 = (await api("/api/v1/assets/hardware?sort=name&page_size=50&cursor=" +
    (await api("/api/v1/assets/hardware?sort=name&page_size=50")).next_cursor)).data.map((a) => a.name || "—");
  check(JSON.stringify(page2) === JSON.stringify(apiPage2), "page 2 matches the API's second page");

  // Detail with software.
  await page.goto(base + "/assets?search=" + encodeURIComponent(dev.serial_number));
  await Promise.all([page.waitForNavigation(), page.click("#assets tbody tr a")]);
  check((await page.textContent("#asset-name")).trim() === (dev.name || "—"), "detail page of the device");
  check((await page.textContent("#asset-fields")).includes(dev.serial_number), "detail shows its fields");
  check(await page.locator("#asset-software tbody tr").count() > 0, "detail lists installed software");
  await shot("asset-detail");

  // A serial reported in two tenants: the detail says so and finds the other device.
  const dup = all.find((a) => a.serial_duplicate);
  check(dup !== undefined, "the simulated world has a serial in two tenants");
  await page.goto(base + "/assets/" + dup.id);
  await Promise.all([page.waitForNavigation(), page.click("#serial-duplicate a")]);
  const twins = await page.locator("#assets tbody tr").allTextContents();
  const twinIds = all.filter((a) => a.serial_number === dup.serial_number).map((a) => a.id);
  check(twins.length === twinIds.length && twinIds.length >= 2 &&
    twins.every((t) => t.includes(dup.serial_number)),
    "the duplicate's link lists every device with the serial (" + twins.length + ")");

  // CSV export equals the API.
  await page.goto(base + "/assets?client=" + client.id);
  const href = await page.getAttribute("#export-csv", "href");
  const csvResp = await page.request.get(base + href);
  check(csvResp.status() === 200, "CSV export downloads with the session");
  const lines = (await csvResp.text()).trim().split("\r\n");
  const apiClient = (await api("/api/v1/assets/hardware?page_size=200&filter[client.id]=eq:" + client.id)).data;
  check(lines.length - 1 === apiClient.length, `CSV rows (${lines.length - 1}) = API rows (${apiClient.length})`);
  const csvIds = lines.slice(1).map((l) => Number(l.split(",")[0])).sort((a, b) => a - b);
  check(JSON.stringify(csvIds) === JSON.stringify(apiClient.map((a) => a.id).sort((a, b) => a - b)), "CSV ids = API ids");

  // Rotate a secret.
  const newSecret = (await simControl(simRoot, { op: "add_secret", app: "partner" })).results[0].secret;
  await page.goto(base + "/integrations");
  await page.click("details summary");
  await page.selectOption("form.rotate select[name=which]", "partner");
  await page.fill("form.rotate input[name=secret]", newSecret);
  await Promise.all([page.waitForNavigation(), page.click("form.rotate button[type=submit]")]);
  check((await page.textContent(".notice")).includes("replaced"), "the key was rotated");
  check((await page.content()).includes(newSecret.slice(0, 3) + "…"), "the new hint is shown");
  check(!(await page.content()).includes(newSecret), "the new key is not shown");

  // A failing tenant's remedy, and a hostile device name.
  const tenants = (await (await fetch(simRoot + "/_sim/world")).json()).tenants;
  await simControl(simRoot, { op: "set_tenant", tenant: tenants[2].id, consented: false });
  const victim = all.find((a) => a.client.tenant_id === tenants[0].id);
  await simControl(simRoot, { op: "modify_device", tenant: tenants[0].id, id: victim.source.intune_device_id,
    set: { deviceName: HOSTILE }, touch: true });
  await page.goto(base + "/integrations");
  await Promise.all([page.waitForNavigation(), page.click("form[action$='/sync'] button")]);
  await waitRuns(api, 2);
  await page.goto(base + "/runs");
  await Promise.all([page.waitForNavigation(), page.click("#runs tbody tr:first-child a")]);
  const remedy = await page.locator("#run-tenants .remedy").allTextContents();
  check(remedy.length === 1 && remedy[0].length > 20, "the failing tenant shows its remedy: " + (remedy[0] || "").slice(0, 80));
  await shot("run-failed-tenant");
  await page.goto(base + "/assets?search=onerror");
  const cell = page.locator("#assets tbody tr td:first-child a").first();
  check((await cell.textContent()) === HOSTILE, "hostile device name is shown as text");
  check(await page.locator("#assets img").count() === 0, "no element was injected");
  await page.click("#assets tbody tr a");
  check((await page.textContent("#asset-name")) === HOSTILE, "hostile name as text on the detail page");
  check(dialogs.length === 0, "no script ran (dialogs: " + dialogs.join(",") + ")");
  await shot("hostile-name");

  // An API key for another tool: created in the UI, shown once, then revoked.
  await page.click("header.top nav a:text('API keys')");
  check(page.url().endsWith("/api-keys"), "API keys are in the navigation");
  await page.fill("#create-key input[name=name]", "PSA sync");
  await Promise.all([page.waitForNavigation(), page.click("#create-key button[type=submit]")]);
  const newKey = (await page.textContent("#new-key")).trim();
  check(/^msk_[0-9a-f]{64}$/.test(newKey), "the new key is shown once");
  const withKey = await fetch(base + "/api/v1/clients", { headers: { "x-api-key": newKey } });
  check(withKey.status === 200, "the key made in the UI reads the API");
  await shot("api-keys");
  await page.goto(base + "/api-keys");
  check(!(await page.content()).includes(newKey), "the key is not shown again");
  const keyRow = page.locator("#api-keys tbody tr", { hasText: "PSA sync" });
  await Promise.all([page.waitForNavigation(), keyRow.locator("form.revoke button").click()]);
  check((await page.textContent(".notice")).includes("revoked"), "the key was revoked");
  const revoked = await fetch(base + "/api/v1/clients", { headers: { "x-api-key": newKey } });
  check(revoked.status === 401, "the revoked key is refused (" + revoked.status + ")");

  // A colleague who only looks: added as a viewer, who then sees no admin pages.
  await page.click("header.top nav a:text('Users')");
  await page.fill("#add-user input[name=name]", "viewer@msp.example");
  await page.selectOption("#add-user select[name=role]", "viewer");
  await page.fill("#add-user input[name=password]", "a-viewer-password-1");
  await Promise.all([page.waitForNavigation(), page.click("#add-user button[type=submit]")]);
  check((await page.textContent(".notice")).includes("added"), "a viewer was added");
  check((await page.locator("#users tbody tr", { hasText: "viewer@msp.example" }).count()) === 1,
    "the new user is listed");
  await shot("users");
  const vctx = await launchBrowser();
  try {
    const vpage = await vctx.newPage();
    await signIn(vpage, base, "viewer@msp.example", "a-viewer-password-1");
    check(vpage.url().endsWith("/assets"), "the viewer signs in");
    check(await vpage.locator("header.top nav a:text('Users')").count() === 0 &&
      await vpage.locator("header.top nav a:text('API keys')").count() === 0,
      "a viewer's navigation has no admin pages");
    const denied = await vpage.goto(base + "/users");
    check(denied.status() === 403, "a viewer is refused the users page");
  } finally {
    await vctx.close();
  }

  // Narrow screens.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(base + "/assets");
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 1, "no page-wide horizontal scroll at 390 px (" + overflow + ")");
  await shot("assets-narrow");
  for (const p of ["/users", "/api-keys"]) {
    await page.goto(base + p);
    const o = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    check(o <= 1, "no page-wide horizontal scroll at 390 px on " + p + " (" + o + ")");
  }
  await shot("users-narrow");
  await page.setViewportSize({ width: 1280, height: 900 });
  await page.goto(base + "/assets");
  await shot("assets-1280");
} finally {
  await ctx.close();
  stopAll();
}
finish();
