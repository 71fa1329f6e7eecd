/**
 * The dashboard server in-process on real sockets and Redis (its chain has no RPC: only the relayer's state), open
 * to remote clients with a token: who gets in and who does not, the browser's cookie, the read-only surface, the
 * chart library served from node_modules, headers, and no token in the logs.
 */
import { readFileSync, rmSync, writeFileSync, mkdtempSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { networkInterfaces, tmpdir } from "node:os";
import { join } from "node:path";

import { expect } from "chai";
import { pino } from "pino";

import { loadRelayerConfig } from "../../../relayer/config/index.js";
import { chartLibraryPath, COOKIE_NAME, isLoopback, isLoopbackHost, startDashboard, type DashboardHandle } from "../../../relayer/dashboard/index.js";
import { TokenError } from "../../../relayer/ingest/auth.js";
import { dropPrefix, REDIS_URL, testRedis, uniquePrefix } from "../../helpers/redis.js";

const TOKEN = "dashboard-test-token-0123456789abcdef";

function get(url: string, options: { localAddress?: string; headers?: Record<string, string>; method?: string } = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { localAddress: options.localAddress, headers: options.headers, method: options.method ?? "GET" }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on("error", reject);
    req.end();
  });
}

function externalAddress(): string | undefined {
  const all = Object.values(networkInterfaces()).flatMap((list) => list ?? []);
  return all.find((entry) => !entry.internal && entry.family === "IPv4")?.address;
}

describe("dashboard: access and surface", function () {
  this.timeout(30_000);
  let dir: string;
  let prefix: string;
  let handle: DashboardHandle | undefined;
  let logs = "";

  function config(dashboard: string) {
    const file = join(dir, "relayer.yaml");
    writeFileSync(
      file,
      `redis: { url: "${REDIS_URL}", prefix: ${prefix} }
chains: { local: {} }
routes:
  - route: mission_critical
    model: gpt-4-turbo
    budget: 0.12 AGPT/1k tokens
    providers: [openai]
archive: { dir: ${join(dir, "archive")} }
${dashboard}
`,
    );
    return loadRelayerConfig(file);
  }

  async function start(env: Record<string, string>, dashboard = "dashboard: { host: 0.0.0.0, port: 0, allow_remote: true, tokens_env: DASH_TEST_TOKENS }") {
    const logger = pino({ level: "trace" }, { write: (line: string) => void (logs += line) });
    handle = await startDashboard(config(dashboard), { env, logger });
    return Number(new URL(handle.url!).port);
  }

  beforeEach(function () {
    dir = mkdtempSync(join(tmpdir(), "agentgpt-dashboard-"));
    prefix = uniquePrefix("dash");
    logs = "";
  });
  afterEach(async function () {
    await handle?.stop();
    handle = undefined;
    const redis = testRedis();
    await dropPrefix(redis, prefix);
    redis.disconnect();
    rmSync(dir, { recursive: true, force: true });
  });

  it("decides loopback on the address, and a loopback Host on the name", function () {
    for (const address of ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"]) expect(isLoopback(address), address).to.equal(true);
    for (const address of ["192.0.2.2", "::ffff:10.0.0.1", "0.0.0.0", "fd00::2", undefined]) expect(isLoopback(address), String(address)).to.equal(false);
    for (const host of ["127.0.0.1:8790", "localhost", "localhost:1", "[::1]:8790"]) expect(isLoopbackHost(host), host).to.equal(true);
    for (const host of ["evil.example", "127.0.0.1.evil.example:80", "[fd00::2]:1", undefined]) expect(isLoopbackHost(host), String(host)).to.equal(false);
  });

  it("does not start open to remote clients without a token, nor with a short one", async function () {
    let caught: unknown;
    try {
      await start({});
    } catch (error) {
      caught = error;
    }
    expect(caught).to.be.instanceOf(TokenError);
    expect((caught as Error).message).to.match(/^dashboard\.allow_remote is true but no token is set: set DASH_TEST_TOKENS=<token>/);
    caught = undefined;
    try {
      await start({ DASH_TEST_TOKENS: "short" });
    } catch (error) {
      caught = error;
    }
    expect((caught as Error).message).to.equal("token 1 in DASH_TEST_TOKENS is shorter than 16 characters; use a random one (e.g. openssl rand -hex 32)");
  });

  it("without a dashboard: section, serves nothing", async function () {
    handle = await startDashboard(config(""), { env: {} });
    expect(handle.url).to.equal(null);
  });

  it("with tokens, every client needs one (loopback too); a browser gets it as an HttpOnly cookie", async function () {
    const port = await start({ DASH_TEST_TOKENS: `${TOKEN},second-token-abcdefghijkl` });
    const url = (path: string) => `http://127.0.0.1:${port}${path}`;

    const none = await get(url("/api/report"));
    expect(none.status).to.equal(401);
    expect(none.headers["www-authenticate"]).to.equal('Bearer realm="agentgpt-dashboard"');
    expect(JSON.parse(none.body.toString())).to.deep.include({ error: "unauthorized" });
    expect((await get(url("/api/report"), { headers: { authorization: `Bearer ${TOKEN}x` } })).status).to.equal(401);
    expect((await get(url("/"), { headers: { cookie: `${COOKIE_NAME}=wrong-token-0123456789` } })).status).to.equal(401);

    const ok = await get(url("/api/report?granularity=model"), { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(ok.status).to.equal(200);
    const body = JSON.parse(ok.body.toString());
    expect(body.report.granularity).to.equal("model");
    expect(body.report.chains).to.deep.equal([{ name: "local", chainId: null, router: null, head: null, fromBlock: null, offline: true, error: null }]);
    expect((await get(url("/api/health"), { headers: { authorization: "Bearer second-token-abcdefghijkl" } })).status).to.equal(200);

    const login = await get(url(`/?token=${TOKEN}`));
    expect(login.status).to.equal(303);
    expect(login.headers.location).to.equal("/");
    const cookie = String(login.headers["set-cookie"]);
    expect(cookie).to.equal(`${COOKIE_NAME}=${TOKEN}; HttpOnly; SameSite=Strict; Path=/`);
    const page = await get(url("/"), { headers: { cookie: cookie.split(";")[0]! } });
    expect(page.status).to.equal(200);
    expect(page.body.toString()).to.include('<script src="/assets/chart.umd.min.js" defer></script>');
    expect((await get(url("/?token=not-the-token-0123456789"))).status).to.equal(401);

    const remote = externalAddress();
    if (remote !== undefined) {
      const from = (path: string, headers: Record<string, string> = {}) => get(`http://${remote}:${port}${path}`, { localAddress: remote, headers });
      expect((await from("/api/report")).status).to.equal(401);
      expect((await from("/api/report", { "x-forwarded-for": "127.0.0.1" })).status).to.equal(401);
      expect((await from("/api/report", { authorization: `Bearer ${TOKEN}` })).status).to.equal(200);
    }
    expect(logs).to.include("dashboard listening");
    expect(logs).to.not.include(TOKEN);
    expect(logs).to.not.include("second-token");
  });

  it("answers a malformed cookie (bad percent-encoding) with the 401 of a missing token, and logs no error", async function () {
    const port = await start({ DASH_TEST_TOKENS: TOKEN });
    const url = (path: string) => `http://127.0.0.1:${port}${path}`;
    for (const value of ["%E0%A4%A", "%", "abc%zz"]) {
      const answer = await get(url("/api/report"), { headers: { cookie: `other=1; ${COOKIE_NAME}=${value}` } });
      expect(answer.status, value).to.equal(401);
      expect(JSON.parse(answer.body.toString()), value).to.deep.include({ error: "unauthorized" });
      expect(answer.headers["www-authenticate"], value).to.equal('Bearer realm="agentgpt-dashboard"');
    }
    // a malformed cookie does not hide a valid bearer token either
    const bearer = await get(url("/api/health"), { headers: { cookie: `${COOKIE_NAME}=%`, authorization: `Bearer ${TOKEN}` } });
    expect(bearer.status).to.equal(200);
    expect(logs).to.not.include("unexpected error");
    expect(logs).to.not.include('"level":50');
  });

  it("is read-only, checks its parameters, serves Chart.js from node_modules, and sends strict headers", async function () {
    const port = await start({}, "dashboard: { port: 0 }");
    const url = (path: string) => `http://127.0.0.1:${port}${path}`;
    const chart = await get(url("/assets/chart.umd.min.js"));
    expect(chart.status).to.equal(200);
    expect(chart.headers["content-type"]).to.equal("text/javascript; charset=utf-8");
    expect(chart.body.equals(readFileSync(chartLibraryPath()))).to.equal(true);
    expect(chart.body.subarray(0, 40).toString()).to.include("Chart.js v4.6.1");

    const bad = await get(url("/api/report?granularity=cost"));
    expect(bad.status).to.equal(400);
    expect(JSON.parse(bad.body.toString())).to.deep.equal({ error: "bad_request", reason: "granularity cost: one of provider, model, user, route" });
    const badUser = await get(url("/api/report?user=0x12"));
    expect(JSON.parse(badUser.body.toString()).reason).to.equal("user 0x12: a payer address is 0x and 40 hex digits");

    for (const method of ["POST", "PUT", "DELETE"]) expect((await get(url("/api/report"), { method })).status, method).to.equal(405);
    const missing = await get(url("/nothing"));
    expect(missing.status).to.equal(404);

    const page = await get(url("/"));
    expect(page.status).to.equal(200);
    // one measure, named: a call's whole duration (not time to first token for some calls and duration for others)
    expect(page.body.toString()).to.include(">Mean duration</th>");
    expect(page.body.toString()).to.not.include(">Latency</th>");
    expect(page.headers["content-security-policy"]).to.match(/default-src 'none'; script-src 'self';/);
    expect(page.headers["x-content-type-options"]).to.equal("nosniff");
    expect(page.headers["cache-control"]).to.equal("no-store");
    expect(page.body.toString()).to.not.match(/https?:\/\/(?!www\.w3\.org)/); // nothing to load from elsewhere
  });
});
