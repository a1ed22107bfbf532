// Browser test of software across clients: playwright-core drives Debian's chromium against
// `memsync serve` and `memsync sim` (127.0.0.1 port 0). Walks: software -> across clients ->
// search a product -> its versions -> the devices across clients -> a device. Screenshots of
// each page at 1440 and 390 px go to $ARTIFACT_DIR (default: artifacts/ beside the binary).
import { check, finish, launchContext, shooter, signIn, startSynced, stopAll } from "./lib.mjs";

// An integration synced once from the CLI; the browser only reads.
const { dir, base, password: pw, api } = await startSynced("sw", ["--tenants", "3", "--devices", "20", "--apps-per-device", "8", "--seed", "5"]);

const ctx = await launchContext(dir, { width: 1440, height: 900 });
try {
  const page = await ctx.newPage();
  const shots = shooter(page, "software");

  await signIn(page, base, "admin", pw);

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
  stopAll();
}
finish();
