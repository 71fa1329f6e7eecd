/**
 * The container image (Dockerfile) built and run: the relayer container against a `hardhat node` and Redis on this
 * machine's loopback (host network), LiteLLM-shaped POSTs in, a batch settled on chain, the image's HEALTHCHECK
 * healthy, its process not root, no Hardhat inside.
 *
 * Building the image takes minutes (every dependency and the contracts compiled inside), so this runs only when
 * asked: AGENTGPT_CONTAINER_ENGINE names the engine command (`docker`, or `podman`, with any global options, e.g.
 * `podman --runtime runc`), AGENTGPT_NODE_IMAGE the Node.js 22.13+ base image when node:22-bookworm-slim cannot be
 * pulled (see the README, "A production worker"). Without AGENTGPT_CONTAINER_ENGINE it is skipped;
 * test/e2e/production-install.test.ts runs the same install steps outside a container in every run.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { chmodSync, mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { promisify } from "node:util";

import { expect } from "chai";

import { startRelayerEnvironment, type RelayerEnvironment } from "../helpers/relayer-environment.js";
import { postSpend, RELAYER_KEY_ENV } from "../helpers/relayer-process.js";
import { chargesByPayer, spendLog } from "../helpers/spend-logs.js";

const run = promisify(execFile);
const REPO = resolve(import.meta.dirname, "..", "..");
const ENGINE = (process.env.AGENTGPT_CONTAINER_ENGINE ?? "").trim().split(/\s+/).filter((part) => part !== "");
const BASE = process.env.AGENTGPT_NODE_IMAGE;
const IMAGE = "localhost/agentgpt-relayer:e2e";

function engine(args: string[], options: { timeout?: number } = {}) {
  return run(ENGINE[0]!, [...ENGINE.slice(1), ...args], { cwd: REPO, maxBuffer: 256 * 1024 * 1024, timeout: options.timeout });
}

describe("e2e: the container image settles a batch (AGENTGPT_CONTAINER_ENGINE)", function () {
  this.timeout(1_800_000);
  let env: RelayerEnvironment;
  let container: ChildProcess | undefined;
  let output = "";
  const name = `agentgpt-e2e-${process.pid}`;

  before(async function () {
    if (ENGINE.length === 0) this.skip();
    const started = Date.now();
    await engine(["build", ...(ENGINE[0] === "podman" ? ["--format", "docker"] : []), ...(BASE === undefined ? [] : ["--build-arg", `NODE_IMAGE=${BASE}`]), "-t", IMAGE, "."]);
    process.stdout.write(`      (image built in ${Math.round((Date.now() - started) / 1000)} s)\n`);
    env = await startRelayerEnvironment({ label: "container", payers: 3 });
    const { setup } = env;
    chmodSync(setup.dir, 0o755); // the image's user (uid 1000) reads the configuration...
    mkdirSync(setup.archiveDir, { recursive: true });
    chmodSync(setup.archiveDir, 0o777); // ...and writes the batch files
  });
  after(async function () {
    if (container !== undefined) {
      if (this.currentTest?.state !== "passed") process.stderr.write(`--- container logs ---\n${output.slice(-6000)}\n`);
      await engine(["stop", "-t", "15", name]).catch(() => undefined);
      await Promise.race([once(container, "exit"), new Promise((r) => setTimeout(r, 20_000))]);
    }
    await env?.close();
  });

  it("runs as a non-root user without Hardhat", async function () {
    const { stdout: user } = await engine(["run", "--rm", "--entrypoint", "id", IMAGE, "-u"]);
    expect(Number(user.trim())).to.not.equal(0);
    const probe = await engine(["run", "--rm", "--entrypoint", "node", IMAGE, "-e", "import('hardhat').then(() => process.exit(0), () => process.exit(3))"]).then(
      () => 0,
      (error: { code: number }) => error.code,
    );
    expect(probe, "hardhat is importable in the image").to.equal(3);
  });

  it("settles LiteLLM's calls on chain, each payer charged once, and reports healthy", async function () {
    const { setup, suite, prefix } = env;
    const before = await env.balances();
    container = spawn(
      ENGINE[0]!,
      [
        ...ENGINE.slice(1),
        "run", "--rm", "--name", name, "--network", "host",
        "-v", `${setup.dir}:${setup.dir}`,
        "-e", `${RELAYER_KEY_ENV}=${suite.relayerKey}`,
        "-e", `AGENTGPT_HEALTH_PORT=${setup.port}`,
        IMAGE, "relayer", "start", "--config", setup.configFile, "--log-level", "info",
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    container.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString()));
    container.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));
    for (const started = Date.now(); !output.includes('"msg":"relayer started"'); ) {
      if (container.exitCode !== null) throw new Error(`the container exited with ${container.exitCode}:\n${output}`);
      if (Date.now() - started > 90_000) throw new Error(`the relayer did not start in 90 s:\n${output}`);
      await new Promise((r) => setTimeout(r, 100));
    }

    const logs = Array.from({ length: 30 }, (_, i) => spendLog(i % 3, i % 2 === 0 ? "gpt-4-turbo" : "mixtral-8x22b", 200 + i * 41, prefix));
    for (let i = 0; i < logs.length; i += 10) {
      const response = await postSpend(setup.url, logs.slice(i, i + 10).map((log) => log.entry));
      expect(response.status, JSON.stringify(response.body)).to.equal(200);
    }
    await env.settled(logs.length, { timeoutMs: 60_000, countRejected: false });
    const expected = chargesByPayer(logs);
    for (const [i, payer] of suite.payers.entries()) {
      expect(before[i]! - (await suite.router.balanceOf(payer.address)), `payer ${i}`).to.equal(expected.get(i));
    }

    // The image's HEALTHCHECK (node fetching /readyz inside the container), run now rather than on its interval.
    if (ENGINE[0] === "podman") {
      const health = await engine(["healthcheck", "run", name]).then(() => "healthy", (error: { stdout?: string; stderr?: string }) => `${error.stdout}${error.stderr}`);
      expect(health).to.equal("healthy");
    } else {
      const { stdout } = await engine(["inspect", "--format", "{{json .Config.Healthcheck.Test}}", IMAGE]);
      const test = JSON.parse(stdout) as string[];
      await engine(["exec", "-e", `AGENTGPT_HEALTH_PORT=${setup.port}`, name, ...test.slice(1)]);
    }
  });
});
