/**
 * A production worker as an operator installs it: `npm pack` of this clone (its prepack runs `npm run build`:
 * hardhat build, then the relayer and the contracts' bindings compiled to dist/), unpacked in a clean folder with
 * the lockfile, `npm ci --omit=dev` there (from the npm cache first: `--prefer-offline`), and `agentgpt relayer
 * start` from that folder against a `hardhat node` with the contracts deployed: LiteLLM-shaped POSTs in, a batch
 * settled on chain, each payer charged exactly once.
 *
 * Also checked: no dev package is installed (Hardhat, tsx, TypeScript, the Solidity libraries...), nothing but
 * compiled JavaScript runs, and every ABI and bytecode the package carries equals the contracts compiled from this
 * clone (a stale ABI is a money bug: a call to a function that changed).
 */
import { execFile } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join, relative, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";

import { expect } from "chai";
import hre from "hardhat";

import { startRelayerEnvironment, type RelayerEnvironment } from "../helpers/relayer-environment.js";
import { postSpend } from "../helpers/relayer-process.js";
import { chargesByPayer, spendLog } from "../helpers/spend-logs.js";

const run = promisify(execFile);
const REPO = resolve(import.meta.dirname, "..", "..");
/** npm as this process's Node runs it (npm's own script, so no PATH lookup decides which Node runs it). */
const NPM = process.env.npm_execpath !== undefined && process.env.npm_execpath.endsWith(".js") ? [process.execPath, process.env.npm_execpath] : ["npm"];

async function npm(args: string[], cwd: string): Promise<{ stdout: string; seconds: number }> {
  const started = Date.now();
  const [command, ...prefix] = NPM;
  const { stdout } = await run(command!, [...prefix, ...args], {
    cwd,
    maxBuffer: 64 * 1024 * 1024,
    env: { ...process.env, HARDHAT_DISABLE_TELEMETRY_PROMPT: "true", npm_config_fund: "false", npm_config_audit: "false", npm_config_update_notifier: "false" },
  });
  return { stdout, seconds: (Date.now() - started) / 1000 };
}

function* files(dir: string): Generator<string> {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) yield* files(path);
    else yield path;
  }
}

describe("e2e: a production install (npm pack, npm ci --omit=dev) runs the relayer without the dev toolchain", function () {
  this.timeout(300_000);
  let dir: string;
  let app: string;
  const timings: Record<string, number> = {};

  before(async function () {
    // Under --coverage artifacts/ holds instrumented contracts: packing would rebuild them under the running tests.
    if (hre.globalOptions.coverage) this.skip();
    dir = mkdtempSync(join(tmpdir(), "agentgpt-install-"));
    app = join(dir, "app");
    const pack = await npm(["pack", "--json", "--pack-destination", dir], REPO);
    timings.pack = pack.seconds;
    const [{ filename }] = JSON.parse(pack.stdout.slice(pack.stdout.indexOf("["))) as [{ filename: string }];
    mkdirSync(app);
    await run("tar", ["-xzf", join(dir, basename(filename)), "-C", app, "--strip-components=1"]);
    copyFileSync(join(REPO, "package-lock.json"), join(app, "package-lock.json"));
    timings.install = (await npm(["ci", "--omit=dev", "--prefer-offline"], app)).seconds;
  });
  after(function () {
    if (Object.keys(timings).length > 0) process.stdout.write(`      (npm pack incl. npm run build: ${timings.pack} s; npm ci --omit=dev: ${timings.install} s)\n`);
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it("ships compiled JavaScript and no TypeScript, Solidity or tests", function () {
    expect(existsSync(join(app, "dist", "relayer", "cli", "main.js"))).to.equal(true);
    expect(existsSync(join(app, "dist", "relayer", "ingest", "parse-worker-main.js"))).to.equal(true);
    expect(existsSync(join(app, "dist", "relayer", "dashboard", "static", "index.html"))).to.equal(true);
    for (const absent of ["relayer", "contracts", "test", "bench", "typechain-types", "artifacts", "hardhat.config.ts", "deploy/deployments/chain-31337"]) {
      expect(existsSync(join(app, absent)), absent).to.equal(false);
    }
    const packed = [...files(app)].filter((path) => !path.startsWith(join(app, "node_modules")));
    expect(packed.filter((path) => path.endsWith(".ts") && !path.endsWith(".d.ts")).map((path) => relative(app, path))).to.deep.equal([]);
  });

  it("installs no dev package: every package the lockfile marks dev-only is absent", function () {
    const lock = JSON.parse(readFileSync(join(app, "package-lock.json"), "utf8")) as { packages: Record<string, { dev?: boolean }> };
    const devOnly = Object.entries(lock.packages).filter(([path, entry]) => path !== "" && entry.dev === true).map(([path]) => path);
    expect(devOnly).to.include.members(["node_modules/hardhat", "node_modules/tsx", "node_modules/typescript", "node_modules/solc", "node_modules/@openzeppelin/contracts"]);
    expect(devOnly.filter((path) => existsSync(join(app, path)))).to.deep.equal([]);
    expect(existsSync(join(app, "node_modules", "ethers")), "a runtime dependency is installed").to.equal(true);
  });

  it("carries every contract's ABI and bytecode exactly as compiled from this clone", async function () {
    const checked: string[] = [];
    for (const path of files(join(app, "dist", "typechain-types", "factories"))) {
      if (!path.endsWith("__factory.js")) continue;
      const name = basename(path, "__factory.js");
      // factories/<dir>/<Name>__factory.js, or factories/<dir>/<File>.sol/<Name>__factory.js when a file has several
      const under = relative(join(app, "dist", "typechain-types", "factories"), dirname(path));
      const source = under.endsWith(".sol") ? join("contracts", under) : join("contracts", under, `${name}.sol`);
      const artifactPath = join(REPO, "artifacts", source, `${name}.json`);
      expect(existsSync(artifactPath), `${relative(app, path)}: no compiled contract ${source}:${name} in artifacts/`).to.equal(true);
      const artifact = JSON.parse(readFileSync(artifactPath, "utf8")) as { abi: unknown[]; bytecode: string };
      const factory = ((await import(pathToFileURL(path).href)) as Record<string, { abi: unknown[]; bytecode?: string }>)[`${name}__factory`]!;
      expect(factory.abi, `${source}:${name} ABI`).to.deep.equal(artifact.abi);
      if (factory.bytecode !== undefined) expect(factory.bytecode, `${source}:${name} bytecode`).to.equal(artifact.bytecode);
      checked.push(name);
    }
    expect(checked).to.include.members(["AutoPayLLM", "AGPTToken", "UsageOracle", "AgentGovernor", "AgentTimelock"]);
  });

  it("refuses the demo with the reason: it needs the dev install", async function () {
    const result = await run(process.execPath, [join(app, "bin", "agentgpt.mjs"), "demo"], { cwd: app }).then(
      () => ({ code: 0, stderr: "" }),
      (error: { code: number; stderr: string }) => error,
    );
    expect(result.code).to.equal(2);
    expect(result.stderr).to.match(/agentgpt demo needs the dev install/);
  });

  describe("relayer start from the installed folder", function () {
    let env: RelayerEnvironment;

    before(async function () {
      env = await startRelayerEnvironment({ label: "install", payers: 3 });
    });
    after(async function () {
      if (this.currentTest?.state !== "passed") env?.printLogs(6000);
      await env?.close();
    });

    it("settles LiteLLM's calls on chain, each payer charged exactly once", async function () {
      const { setup, suite, prefix, store } = env;
      const before = await env.balances();
      const relayer = await env.spawn({ command: { bin: join(app, "bin", "agentgpt.mjs"), cwd: app } });
      expect(relayer.logs()).to.include('"msg":"relayer started"');

      const ready = await fetch(`${setup.url}/readyz`); // what the container's HEALTHCHECK asks
      expect(ready.status, await ready.text()).to.equal(200);

      const logs = Array.from({ length: 45 }, (_, i) => spendLog(i % 3, i % 2 === 0 ? "gpt-4-turbo" : "mixtral-8x22b", 120 + i * 37, prefix));
      for (let i = 0; i < logs.length; i += 15) {
        const response = await postSpend(setup.url, logs.slice(i, i + 15).map((log) => log.entry));
        expect(response.status, JSON.stringify(response.body)).to.equal(200);
      }
      const resent = await postSpend(setup.url, logs.slice(0, 15).map((log) => log.entry)); // LiteLLM re-sends a body
      expect(resent.status).to.equal(200);

      await env.settled(logs.length, { timeoutMs: 60_000, countRejected: false });
      expect((await store.stats()).receipts_settled).to.equal(logs.length);
      expect((await store.finalIds()).length).to.be.greaterThan(0);

      const expected = chargesByPayer(logs);
      let total = 0n;
      for (const [i, payer] of suite.payers.entries()) {
        const charged = before[i]! - (await suite.router.balanceOf(payer.address));
        expect(charged, `payer ${i}`).to.equal(expected.get(i));
        total += charged;
      }
      expect(await suite.router.totalEscrow()).to.equal(total);
    });
  });
});
