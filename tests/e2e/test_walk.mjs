// The walk a technician makes (issue 19's must-show), in one browser test asserting the numbers
// at each step: overview -> a card -> the filtered hardware list -> a device -> its client page
// -> exclude that client -> the overview without it (and with it again after include); and
// software: search a product -> its versions -> the devices across clients. playwright-core
// drives Debian's chromium against `memsync serve` and `memsync sim` (127.0.0.1 port 0).
// Screenshots of each page at 1440 and 390 px go to $ARTIFACT_DIR (default: artifacts/ beside
// the memsync binary), named walk-*.png.
import { check, finish, launchContext, shooter, signIn, startSynced, stopAll } from "./lib.mjs";

// An integration synced once from the CLI; the browser walks what it stored.
const { dir, base, password: pw, api } = await startSynced("walk", ["--tenants", "4", "--devices", "25", "--apps-per-device", "6", "--seed", "11"]);

const ctx = await launchContext(dir, { width: 1440, height: 900 });
try {
  const page = await ctx.newPage();
  const shots = shooter(page, "walk");
  const cardN = async (fig) =>
    Number((await page.locator(`.cards a.card[data-figure=${fig}] strong`).textContent()).trim());
  const listTotal = async () => {
    const m = (await page.textContent(".pager")).match(/(\d+) total/);
    return m ? Number(m[1]) : -1;
  };
  const sum = (rows, fig) => rows.reduce((n, r) => n + r[fig], 0);

  await signIn(page, base, "admin", pw);

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
  stopAll();
}
finish();
