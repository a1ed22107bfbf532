// /openapi.json of a running `memsync serve`, fetched without credentials (it is public) and
// checked by an independent validator (@apidevtools/swagger-parser: the OpenAPI 3.1 schema, then
// every $ref resolved), so generators and "import from URL" tools can use it.
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import SwaggerParser from "@apidevtools/swagger-parser";

const bin = process.env.MEMSYNC_BIN || "memsync";
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "memsync-oas-"));
const urlFile = path.join(dir, "serve.url");
const env = { ...process.env, MEMSYNC_DB: path.join(dir, "memsync.db") };
const serve = spawn(bin, ["serve", "--listen", "127.0.0.1:0", "--url-file", urlFile,
  "--no-schedule"], { cwd: dir, env, stdio: ["ignore", "ignore", "inherit"] });

function fail(msg) {
  console.error("FAIL:", msg);
  process.exitCode = 1;
}

try {
  const deadline = Date.now() + 30000;
  while (!fs.existsSync(urlFile) || fs.readFileSync(urlFile, "utf8").trim() === "") {
    if (serve.exitCode !== null) throw new Error("memsync serve exited early");
    if (Date.now() > deadline) throw new Error("memsync serve did not start");
    await new Promise((r) => setTimeout(r, 25));
  }
  const base = fs.readFileSync(urlFile, "utf8").trim();
  const res = await fetch(base + "/openapi.json");
  if (res.status !== 200) fail(`/openapi.json without credentials: ${res.status}`);
  const doc = await res.json();
  if (doc.openapi !== "3.1.0") fail(`openapi is ${doc.openapi}`);
  // validate() works on its own copy: it dereferences what it checks.
  const api = await SwaggerParser.validate(structuredClone(doc));
  let ops = 0;
  for (const [p, item] of Object.entries(api.paths)) {
    for (const [method, op] of Object.entries(item)) {
      ops++;
      if (!op.operationId) fail(`${method} ${p} has no operationId`);
      const ok = Object.entries(op.responses).filter(([code]) => code.startsWith("2"));
      if (ok.length === 0 || !ok.every(([, r]) => r.content &&
          Object.values(r.content).every((m) => m.schema)))
        fail(`${method} ${p} has no typed 2xx answer`);
    }
  }
  if (ops < 20) fail(`only ${ops} operations`);
  // A broken document must be refused, or this test proves nothing.
  const broken = structuredClone(doc);
  broken.paths["/api/v1/me"].get.responses["200"].content["application/json"].schema =
    { $ref: "#/components/schemas/NoSuchSchema" };
  let refused = false;
  try {
    await SwaggerParser.validate(broken);
  } catch {
    refused = true;
  }
  if (!refused) fail("the validator accepted a dangling $ref");
  if (!process.exitCode) console.log(`ok: ${ops} operations validated`);
} catch (e) {
  fail(e.stack || String(e));
} finally {
  serve.kill("SIGTERM");
  fs.rmSync(dir, { recursive: true, force: true });
}
