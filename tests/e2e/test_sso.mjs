// Browser test of "Sign in with Microsoft": playwright-core drives Debian's chromium through
// memsync's sign-in page and the simulator's account picker (both on 127.0.0.1 port 0), then
// through the refusals the simulator can provoke (a token for another audience or tenant, with
// another nonce, with a broken signature), each of which must end on its own clear page without
// a session. Screenshots go to $ARTIFACT_DIR (default: artifacts/ beside the memsync binary).
import { spawnSync } from "node:child_process";
import path from "node:path";
import { ART, BIN, check, finish, launchBrowser, memsyncEnv, startServe, startSim, stopAll,
  workdir } from "./lib.mjs";

const dir = workdir("sso");
const { env: simEnv, root: simRoot } = await startSim(dir, ["--tenants", "2", "--devices", "5", "--seed", "7"]);
const env = memsyncEnv(dir, simEnv);
const { base } = await startServe(env, dir, ["--no-schedule"]);

async function oidc(body) {
  const r = await fetch(simRoot + "/_sim/oidc", body === undefined ? {} : {
    method: "POST", body: JSON.stringify(body), headers: { "content-type": "application/json" },
  });
  if (r.status !== 200) throw new Error("/_sim/oidc -> " + r.status);
  return r.json();
}

const cfg = await oidc();
const set = spawnSync(BIN, ["account", "sso", "set", "--tenant", simEnv.MEMSYNC_SIM_PARTNER_TENANT_ID,
  "--client-id", simEnv.MEMSYNC_SIM_SSO_CLIENT_ID, "--redirect-uri", base + "/auth/sso/callback",
  "--map", cfg.admin_group + "=admin," + cfg.viewer_group + "=viewer", "--secret-file", "-"],
  { env, cwd: dir, input: simEnv.MEMSYNC_SIM_SSO_CLIENT_SECRET + "\n" });
check(set.status === 0, "memsync account sso set (" + set.stderr + ")");

const browser = await launchBrowser();

// One sign-in in a fresh browser context: sign-in page, button, the simulator's picker, back.
async function signIn(who, shotName) {
  const ctx = await browser.newContext({ viewport: { width: 1100, height: 800 } });
  const page = await ctx.newPage();
  try {
    await page.goto(base + "/login");
    await page.click("a:text('Sign in with Microsoft')");
    await page.waitForURL((u) => u.href.startsWith(simRoot), { timeout: 15000 });
    const picker = await page.textContent("h1");
    await page.click("a:has-text('" + who + "')");
    await page.waitForURL((u) => u.href.startsWith(base) && !u.pathname.startsWith("/auth/sso?"),
      { timeout: 15000 });
    await page.waitForLoadState("load");
    const cookies = await ctx.cookies(base);
    const out = {
      picker, url: page.url(), h1: (await page.textContent("h1").catch(() => "")) || "",
      body: await page.textContent("body"), session: cookies.some((c) => c.name === "memsync_session"),
      // A refusal page has no header: count first rather than wait out the locator's timeout.
      who: (await page.locator("header.top .who span").count()) > 0
        ? await page.locator("header.top .who span").first().textContent() : "",
    };
    await page.screenshot({ path: path.join(ART, "sso-" + shotName + ".png"), fullPage: true });
    return out;
  } finally {
    await ctx.close();
  }
}

try {
  const ok = await signIn("Ada Admin", "signed-in");
  check(ok.picker.includes("Pick an account"), "the simulator shows its account picker");
  check(new URL(ok.url).pathname === "/assets" && ok.session, "Ada lands on /assets with a session (" + ok.url + ")");
  check(ok.who.includes("ada.admin@") && ok.who.includes("admin"), "the header names Ada, an admin (" + ok.who + ")");

  const viewer = await signIn("Victor Viewer", "viewer");
  check(viewer.session && viewer.who.includes("viewer"), "Victor signs in as a viewer (" + viewer.who + ")");

  const outsider = await signIn("Otto Outsider", "unmapped");
  check(!outsider.session && outsider.h1.includes("Not allowed"), "Otto, in no mapped group, is refused (" + outsider.h1 + ")");

  for (const [fault, title] of [["wrong_aud", "token for another application"], ["wrong_tid", "another tenant"],
    ["wrong_nonce", "not this sign-in"], ["bad_signature", "bad signature"]]) {
    await oidc({ next_fault: fault });
    const r = await signIn("Ada Admin", fault);
    check(!r.session && r.h1.includes(title) && r.body.includes("Back to sign-in") && !r.body.includes("eyJ"),
      fault + ": refused with the page \"" + r.h1 + "\"");
  }

  const again = await signIn("Ada Admin", "after-refusals");
  check(again.session, "a good token signs in again after the refusals");
} finally {
  await browser.close();
  stopAll();
}
finish();
