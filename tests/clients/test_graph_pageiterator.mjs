// Microsoft Graph JS client (@microsoft/microsoft-graph-client) against `memsync sim --tls`:
// PageIterator walks every managedDevices page of a 2,500-device tenant (tokens from MSAL
// Node) and sees each device id exactly once, the same ids as a plain @odata.nextLink walk;
// Graph errors arrive as the client's GraphError.
import { ConfidentialClientApplication, LogLevel } from "@azure/msal-node";
import graph from "@microsoft/microsoft-graph-client";
import { simulator, getJson, control, runner } from "./simhelper.mjs";

const { Client, PageIterator } = graph;
const DEVICES = 2500;
const { env, root } = await simulator(import.meta.url, [
  "--tenants", "2", "--devices", String(DEVICES), "--apps-per-device", "1", "--no-throttle",
]);
const DEV_PATH = "/deviceManagement/managedDevices";

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

const world = (await getJson(`${root}/_sim/world`)).body;
const [tA, tB] = world.tenants;

function msalFor(tenant) {
  return new ConfidentialClientApplication({
    auth: {
      clientId: env.MEMSYNC_SIM_SYNC_APP_ID,
      clientSecret: env.MEMSYNC_SIM_SYNC_APP_SECRET,
      authority: `${env.MEMSYNC_LOGIN_URL}/${tenant}`,
      knownAuthorities: [new URL(env.MEMSYNC_LOGIN_URL).host],
    },
    system: { loggerOptions: { logLevel: LogLevel.Error, loggerCallback() {} } },
  });
}

async function token(tenant) {
  const r = await msalFor(tenant).acquireTokenByClientCredential({
    scopes: ["https://graph.microsoft.com/.default"],
  });
  return r.accessToken;
}

// Client.init with an authProvider fed by MSAL; the sim's host must be a custom host or the
// client sends no Authorization header to it.
function graphClient(tenant, { version = "v1.0", customHosts = true } = {}) {
  const app = msalFor(tenant);
  return Client.init({
    baseUrl: env.MEMSYNC_GRAPH_URL,
    defaultVersion: version,
    ...(customHosts ? { customHosts: new Set([new URL(env.MEMSYNC_GRAPH_URL).hostname]) } : {}),
    authProvider: (done) => {
      app
        .acquireTokenByClientCredential({ scopes: ["https://graph.microsoft.com/.default"] })
        .then((r) => done(null, r.accessToken), (e) => done(e, null));
    },
  });
}

// Plain walk: fetch + @odata.nextLink, no Microsoft library involved.
async function plainIds(tenant, query = "") {
  const tok = await token(tenant);
  let url = `${env.MEMSYNC_GRAPH_URL}/v1.0${DEV_PATH}${query}`;
  const ids = [];
  let pages = 0;
  while (url) {
    const r = await getJson(url, tok);
    assert(r.status === 200, `plain GET ${url}: ${r.status}`);
    ids.push(...r.body.value.map((d) => d.id));
    url = r.body["@odata.nextLink"];
    pages++;
  }
  return { ids, pages };
}

async function iterate(client, request) {
  const first = await request.get();
  const ids = [];
  const it = new PageIterator(client, first, (d) => {
    ids.push(d.id);
    return true;
  });
  await it.iterate();
  assert(it.isComplete(), "PageIterator stopped before the last page");
  return ids;
}

function assertExactlyOnce(ids, want, what) {
  const seen = new Set(ids);
  assert(seen.size === ids.length, `${what}: ${ids.length - seen.size} duplicate ids`);
  assert(ids.length === want.length, `${what}: ${ids.length} ids, want ${want.length}`);
  for (const id of want) assert(seen.has(id), `${what}: missing ${id}`);
}

const { test, run } = runner();
let plainA;

test("plain nextLink walk: 2,500 devices in 3 pages", async () => {
  plainA = await plainIds(tA.id);
  assert(tA.devices === DEVICES, `world says ${tA.devices} devices`);
  assert(plainA.pages === 3, `${plainA.pages} pages`);
  assertExactlyOnce(plainA.ids, plainA.ids, "plain");
  assert(plainA.ids.length === DEVICES, `plain saw ${plainA.ids.length}`);
});

test("PageIterator sees every device id exactly once (v1.0)", async () => {
  const client = graphClient(tA.id);
  const ids = await iterate(client, client.api(DEV_PATH));
  assertExactlyOnce(ids, plainA.ids, "PageIterator");
  assert(ids.join() === plainA.ids.join(), "PageIterator order differs from the plain walk");
});

test("PageIterator with $select and $top=300 (9 pages, beta)", async () => {
  const client = graphClient(tA.id, { version: "beta" });
  let pages = 0;
  const first = await client.api(DEV_PATH).select(["id", "serialNumber"]).top(300).get();
  const ids = [];
  const it = new PageIterator(client, first, (d) => {
    ids.push(d.id);
    assert(Object.keys(d).every((k) => ["id", "serialNumber"].includes(k)), "unselected key");
    return true;
  });
  const origGet = client.api.bind(client);
  client.api = (p) => {
    pages++;
    return origGet(p);
  };
  await it.iterate();
  assert(pages === 8, `${pages} follow-up pages, want 8`);
  assertExactlyOnce(ids, plainA.ids, "PageIterator $top=300");
});

test("tenants stay apart: the second tenant's walk shares no id with the first", async () => {
  const client = graphClient(tB.id);
  const ids = await iterate(client, client.api(DEV_PATH));
  const plainB = await plainIds(tB.id);
  assertExactlyOnce(ids, plainB.ids, "tenant B");
  const a = new Set(plainA.ids);
  assert(!ids.some((id) => a.has(id)), "tenant B returned tenant A devices");
});

test("devices removed during a paused walk: no repeats, nothing else skipped", async () => {
  const client = graphClient(tB.id);
  const before = (await plainIds(tB.id)).ids;
  const removed = new Set(before.slice(1500, 1510));
  const ids = [];
  // The callback pauses the iterator after page 1 (callbacks are synchronous); the devices
  // are removed while paused, then resume() fetches page 2 from the sim's nextLink.
  const it = new PageIterator(client, await client.api(DEV_PATH).get(), (d) => {
    ids.push(d.id);
    return ids.length !== 1000;
  });
  await it.iterate();
  assert(!it.isComplete() && ids.length === 1000, `paused after ${ids.length}`);
  await control(root, { op: "remove_devices", tenant: tB.id, ids: [...removed] });
  await it.resume();
  assert(it.isComplete(), "resume() did not finish");
  const want = before.filter((id) => !removed.has(id));
  assertExactlyOnce(ids, want, "walk with removals");
});

test("Graph errors reach the client as GraphError (no custom host: 401)", async () => {
  const client = graphClient(tA.id, { customHosts: false });
  let err = null;
  try {
    await client.api("/organization").get();
  } catch (e) {
    err = e;
  }
  assert(err, "request without a token succeeded");
  assert(err.statusCode === 401, `statusCode ${err.statusCode}`);
  assert(err.code === "InvalidAuthenticationToken", `code ${err.code}`);
  assert(typeof err.requestId === "string" && err.requestId.length > 0, "no request-id");
});

test("$select of an unknown property: 400 BadRequest as GraphError", async () => {
  const client = graphClient(tA.id);
  let err = null;
  try {
    await client.api(DEV_PATH).select("noSuchProperty").get();
  } catch (e) {
    err = e;
  }
  assert(err && err.statusCode === 400, `statusCode ${err && err.statusCode}`);
  assert(err.code === "BadRequest", `code ${err.code}`);
  assert(/noSuchProperty/.test(err.message), `message ${err.message}`);
});

await run();
