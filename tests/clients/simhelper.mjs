// Shared by tests/clients/test_*.mjs: runs `memsync sim --tls` and a tiny test runner.
//
// Microsoft's Node libraries use Node's built-in fetch, which trusts only the CAs known at
// process start (NODE_EXTRA_CA_CERTS is read once). So each test file runs twice: the parent
// starts the simulator, then re-runs the same file as a child with NODE_EXTRA_CA_CERTS set to
// the simulator's throwaway CA; the parent stops the simulator however the child ends and
// exits with the child's status. No certificate check is ever turned off.
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const CHILD_FLAG = "MEMSYNC_CLIENTS_SIM_ENV";

export function parseEnvFile(file) {
  const env = {};
  for (const line of fs.readFileSync(file, "utf8").split("\n")) {
    const m = /^(?:export\s+)?([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (!m) continue;
    let v = m[2];
    // The simulator writes single-quoted shell words; '\'' is an embedded quote.
    if (v.startsWith("'")) v = v.slice(1, -1).replaceAll("'\\''", "'");
    env[m[1]] = v;
  }
  return env;
}

async function waitForFile(file, proc, ms) {
  const deadline = Date.now() + ms;
  while (!fs.existsSync(file)) {
    if (proc.exitCode !== null || proc.signalCode !== null)
      throw new Error(`memsync sim exited early (${proc.exitCode ?? proc.signalCode})`);
    if (Date.now() > deadline) throw new Error("memsync sim did not write its env file");
    await new Promise((r) => setTimeout(r, 25));
  }
}

function stopProc(proc) {
  return new Promise((resolve) => {
    if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
    const t = setTimeout(() => proc.kill("SIGKILL"), 5000);
    proc.once("exit", () => {
      clearTimeout(t);
      resolve();
    });
    proc.kill("SIGTERM");
  });
}

// Parent: starts the simulator with simArgs and re-runs scriptUrl under its CA; never returns.
// Child: returns {env, root} for the running simulator.
export async function simulator(scriptUrl, simArgs = []) {
  if (process.env[CHILD_FLAG]) {
    const env = parseEnvFile(process.env[CHILD_FLAG]);
    return { env, root: new URL(env.MEMSYNC_GRAPH_URL).origin };
  }
  const bin = process.env.MEMSYNC_BIN || "memsync";
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "memsync-clients-"));
  const envFile = path.join(dir, "sim.env");
  const log = fs.openSync(path.join(dir, "sim.log"), "w");
  const sim = spawn(
    bin,
    ["sim", "--tls", "--listen", "127.0.0.1:0", "--env-file", envFile, ...simArgs],
    { stdio: ["ignore", log, log] },
  );
  let status = 1;
  const onSignal = () => stopProc(sim).then(() => process.exit(130));
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    await waitForFile(envFile, sim, 30000);
    const env = parseEnvFile(envFile);
    if (!env.MEMSYNC_CA_FILE) throw new Error("sim --tls wrote no MEMSYNC_CA_FILE");
    const child = spawn(process.execPath, [fileURLToPath(scriptUrl)], {
      stdio: "inherit",
      env: { ...process.env, [CHILD_FLAG]: envFile, NODE_EXTRA_CA_CERTS: env.MEMSYNC_CA_FILE },
    });
    status = await new Promise((resolve) =>
      child.on("exit", (code, sig) => resolve(code ?? (sig ? 1 : 1))),
    );
  } catch (e) {
    console.error(`setup failed: ${e.stack || e}`);
    console.log("0 passed, 1 failed");
  } finally {
    await stopProc(sim);
    fs.closeSync(log);
    if (status !== 0) {
      const text = fs.readFileSync(path.join(dir, "sim.log"), "utf8");
      if (text) console.error(`--- sim log (tail)\n${text.slice(-3000)}`);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  }
  process.exit(status);
}

// Plain HTTPS JSON call (the sim's CA is trusted in the child).
export async function getJson(url, token, init = {}) {
  const headers = { ...(init.headers || {}) };
  if (token) headers.Authorization = `Bearer ${token}`;
  const r = await fetch(url, { ...init, headers });
  const text = await r.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = text;
  }
  return { status: r.status, body, headers: r.headers };
}

export async function control(root, ops) {
  const r = await getJson(`${root}/_sim/control`, null, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(ops),
  });
  if (r.status !== 200) throw new Error(`control ${JSON.stringify(ops)}: ${r.status}`);
  return r.body;
}

// Minimal runner: tests run in order; prints "N passed, M failed" and sets the exit code.
export function runner() {
  const tests = [];
  return {
    test: (name, fn) => tests.push({ name, fn }),
    async run() {
      let passed = 0;
      let failed = 0;
      for (const t of tests) {
        const t0 = Date.now();
        try {
          await t.fn();
          passed++;
          console.log(`ok   ${t.name} (${Date.now() - t0} ms)`);
        } catch (e) {
          failed++;
          console.log(`FAIL ${t.name}: ${e.stack || e}`);
        }
      }
      console.log(`${passed} passed, ${failed} failed`);
      process.exit(failed === 0 && passed > 0 ? 0 : 1);
    },
  };
}
