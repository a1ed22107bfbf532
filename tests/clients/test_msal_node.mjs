// MSAL Node (@azure/msal-node) against `memsync sim --tls`: client-credential tokens for the
// sync app (Graph, customer and partner tenants) and the partner app (Partner Center), MSAL's
// cache, Entra errors as MSAL surfaces them, and a custom system.networkClient with the CA.
import fs from "node:fs";
import https from "node:https";
import { ConfidentialClientApplication, LogLevel } from "@azure/msal-node";
import { simulator, getJson, control, runner } from "./simhelper.mjs";

const { env, root } = await simulator(import.meta.url, ["--tenants", "3", "--devices", "20"]);
const GRAPH_SCOPE = ["https://graph.microsoft.com/.default"];
const PC_SCOPE = ["https://api.partnercenter.microsoft.com/.default"];
const host = new URL(env.MEMSYNC_LOGIN_URL).host; // 127.0.0.1:PORT

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

function app(tenant, { id, secret, networkClient } = {}) {
  return new ConfidentialClientApplication({
    auth: {
      clientId: id || env.MEMSYNC_SIM_SYNC_APP_ID,
      clientSecret: secret || env.MEMSYNC_SIM_SYNC_APP_SECRET,
      authority: `${env.MEMSYNC_LOGIN_URL}/${tenant}`,
      knownAuthorities: [host],
    },
    system: {
      ...(networkClient ? { networkClient } : {}),
      loggerOptions: { logLevel: LogLevel.Error, piiLoggingEnabled: false, loggerCallback() {} },
    },
  });
}

async function tokenRequests() {
  const st = (await getJson(`${root}/_sim/stats`)).body;
  return Object.values(st.requests.token_v2 || {}).reduce((a, b) => a + b, 0);
}

async function expectAuthError(promise, code, aadsts) {
  let err = null;
  try {
    await promise;
  } catch (e) {
    err = e;
  }
  assert(err, `expected ${code}, got a token`);
  assert(err.errorCode === code, `errorCode ${err.errorCode} != ${code}: ${err.message}`);
  assert(
    String(err.errorMessage).includes(`AADSTS${aadsts}`),
    `errorMessage lacks AADSTS${aadsts}: ${err.errorMessage}`,
  );
  return err;
}

const world = (await getJson(`${root}/_sim/world`)).body;
const [t0, t1, t2] = world.tenants;
const partnerTenant = env.MEMSYNC_SIM_PARTNER_TENANT_ID;
const { test, run } = runner();

test("sync app token in a customer tenant reads that tenant on Graph", async () => {
  const res = await app(t0.id).acquireTokenByClientCredential({ scopes: GRAPH_SCOPE });
  assert(res && res.accessToken, "no access token");
  assert(res.tokenType === "Bearer", `tokenType ${res.tokenType}`);
  const left = (res.expiresOn.getTime() - Date.now()) / 1000;
  assert(left > 300 && left < 90000, `expiresOn ${res.expiresOn.toISOString()}`);
  assert(res.authority === `${env.MEMSYNC_LOGIN_URL}/${t0.id}/`, `authority ${res.authority}`);
  const org = await getJson(`${env.MEMSYNC_GRAPH_URL}/v1.0/organization`, res.accessToken);
  assert(org.status === 200, `organization ${org.status}`);
  assert(org.body.value.length === 1 && org.body.value[0].id === t0.id, "wrong tenant");
});

test("second request is served from MSAL's cache", async () => {
  const a = app(t1.id);
  const first = await a.acquireTokenByClientCredential({ scopes: GRAPH_SCOPE });
  assert(first.fromCache === false, "first token came from cache");
  const before = await tokenRequests();
  const second = await a.acquireTokenByClientCredential({ scopes: GRAPH_SCOPE });
  assert(second.fromCache === true, "second token was not cached");
  assert(second.accessToken === first.accessToken, "cached token differs");
  assert((await tokenRequests()) === before, "cache hit still called the token endpoint");
});

test("tenant given by its domain", async () => {
  const res = await app(t2.initial_domain).acquireTokenByClientCredential({ scopes: GRAPH_SCOPE });
  const org = await getJson(`${env.MEMSYNC_GRAPH_URL}/v1.0/organization`, res.accessToken);
  assert(org.body.value[0].id === t2.id, "domain resolved to the wrong tenant");
});

test("partner app token lists Partner Center customers, and is refused by Graph", async () => {
  const a = app(partnerTenant, {
    id: env.MEMSYNC_SIM_PARTNER_APP_ID,
    secret: env.MEMSYNC_SIM_PARTNER_APP_SECRET,
  });
  const res = await a.acquireTokenByClientCredential({ scopes: PC_SCOPE });
  const pc = await getJson(`${env.MEMSYNC_PARTNER_CENTER_URL}/v1/customers?size=500`, res.accessToken);
  assert(pc.status === 200, `customers ${pc.status}`);
  const got = pc.body.items.map((c) => c.id).sort();
  const want = world.tenants.map((t) => t.id).sort();
  assert(JSON.stringify(got) === JSON.stringify(want), "customer ids differ from the world");
  const g = await getJson(`${env.MEMSYNC_GRAPH_URL}/v1.0/organization`, res.accessToken);
  assert(g.status === 401, `Graph accepted a Partner Center token (${g.status})`);
});

test("sync app Graph token in the partner tenant", async () => {
  const res = await app(partnerTenant).acquireTokenByClientCredential({ scopes: GRAPH_SCOPE });
  assert(res.accessToken, "no token");
});

test("wrong secret: invalid_client AADSTS7000215", async () => {
  const bad = env.MEMSYNC_SIM_SYNC_APP_SECRET.slice(0, -2) + "x=";
  const err = await expectAuthError(
    app(t0.id, { secret: bad }).acquireTokenByClientCredential({ scopes: GRAPH_SCOPE }),
    "invalid_client",
    "7000215",
  );
  assert(String(err.errorNo) === "7000215", `errorNo ${err.errorNo}`);
});

test("partner app in a customer tenant: unauthorized_client AADSTS700016", async () => {
  await expectAuthError(
    app(t0.id, {
      id: env.MEMSYNC_SIM_PARTNER_APP_ID,
      secret: env.MEMSYNC_SIM_PARTNER_APP_SECRET,
    }).acquireTokenByClientCredential({ scopes: PC_SCOPE }),
    "unauthorized_client",
    "700016",
  );
});

test("revoked consent: AADSTS700016, restored consent: token", async () => {
  await control(root, { op: "revoke_consent", tenant: t2.id });
  try {
    await expectAuthError(
      app(t2.id).acquireTokenByClientCredential({ scopes: GRAPH_SCOPE }),
      "unauthorized_client",
      "700016",
    );
  } finally {
    await control(root, { op: "set_tenant", tenant: t2.id, consented: true });
  }
  const res = await app(t2.id).acquireTokenByClientCredential({ scopes: GRAPH_SCOPE });
  assert(res.accessToken, "no token after consent was restored");
});

test("custom system.networkClient with the sim's CA (node:https)", async () => {
  const ca = fs.readFileSync(env.MEMSYNC_CA_FILE);
  let calls = 0;
  const send = (method) => (url, options = {}) =>
    new Promise((resolve, reject) => {
      calls++;
      const req = https.request(url, { method, ca, headers: options.headers || {} }, (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let body;
          try {
            body = JSON.parse(text);
          } catch (e) {
            return reject(e);
          }
          const headers = {};
          for (const [k, v] of Object.entries(res.headers)) headers[k] = String(v);
          resolve({ headers, body, status: res.statusCode });
        });
      });
      req.on("error", reject);
      req.setTimeout(15000, () => req.destroy(new Error("timeout")));
      if (method === "POST") req.write(options.body || "");
      req.end();
    });
  const networkClient = { sendGetRequestAsync: send("GET"), sendPostRequestAsync: send("POST") };
  const res = await app(t1.id, { networkClient }).acquireTokenByClientCredential({
    scopes: GRAPH_SCOPE,
  });
  assert(res.accessToken, "no token");
  assert(calls >= 2, `networkClient used ${calls} times (discovery + token expected)`);
  const org = await getJson(`${env.MEMSYNC_GRAPH_URL}/v1.0/organization`, res.accessToken);
  assert(org.body.value[0].id === t1.id, "wrong tenant");
});

await run();
