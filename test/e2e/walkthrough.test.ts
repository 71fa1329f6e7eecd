/**
 * The README's walk-through "From a fresh clone to a provider paid", run as written: the fenced ```sh blocks of that
 * section are read from README.md (never copied here) and fed, in order, to one bash process (`set -euo pipefail`),
 * as a person types them in one terminal: a real `hardhat node --hostname 127.0.0.1`, the real deploy, the real
 * `agentgpt relayer start` on this machine's Redis, the payer, provider and monitor commands, a LiteLLM-shaped POST
 * with curl. A renamed command or option, a changed output the section waits for, or a broken step fails the test,
 * naming the block, its output and the node's and relayer's logs.
 *
 * What the test changes, and only through variables the section's first block reads with `${VAR:-default}`:
 * NODE_PORT and RELAYER_PORT (free ports), REDIS_PREFIX (a fresh prefix, dropped at the end), WALK (a temporary
 * directory); and AGENTGPT_DEPLOYMENTS_DIR (a temporary directory, so the deploy does not write the clone's
 * deploy/deployments/chain-31337), which the deploy and every agentgpt command read. The background processes the
 * section starts (node, relayer) are in the bash process's group, which is killed at the end whatever happens.
 *
 * Checked: both billable calls charged on-chain (the exact route prices), the providers' credits shown after the
 * release, then withdrawn: each payee's AGPT balance grows by exactly what was credited, nothing left in credits or
 * escrow; the stop block ends the relayer and the node.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { expect } from "chai";
import { JsonRpcProvider } from "ethers";

import { loadDeployment } from "../../relayer/chain/index.js";
import { AGPTToken__factory } from "../../typechain-types/factories/AGPTToken__factory.js";
import { AutoPayLLM__factory } from "../../typechain-types/factories/AutoPayLLM__factory.js";
import { REPO } from "../deploy/local-node.js";
import { freePort } from "../helpers/hardhat-node.js";
import { dropPrefix, testRedis, uniquePrefix } from "../helpers/redis.js";

const SECTION = "From a fresh clone to a provider paid";
/** hardhat node accounts #10 (openai's payee) and #13 (groq's), deploy/parameters/localhost.json5 */
const PAYEES = { openai: "0xBcd4042DE499D14e55001CcbB24a551F3b954096", groq: "0x1CBd3b2770909D4e10f157cABC84C7264073C9Ec" } as const;
/** fixtures/litellm/12_generic_api_batch_json_array.json at the seed's route prices: 1,630 x 0.12 and 1,250 x 0.0085 AGPT per 1k */
const EXPECTED = { openai: 195_600_000_000_000_000n, groq: 10_625_000_000_000_000n } as const;
const BLOCK_TIMEOUT_MS = 180_000;

/** The ```sh blocks of the README section titled `title` (from its `## ` heading to the next one). */
function sectionBlocks(markdown: string, title: string): string[] {
  const lines = markdown.split("\n");
  const start = lines.findIndex((line) => line === `## ${title}`);
  if (start < 0) throw new Error(`README.md has no "## ${title}" section`);
  const end = lines.findIndex((line, i) => i > start && /^## /.test(line));
  const body = lines.slice(start + 1, end < 0 ? undefined : end);
  const blocks: string[] = [];
  let current: string[] | null = null;
  for (const line of body) {
    if (current === null && line.trim() === "```sh") current = [];
    else if (current !== null && line.trim() === "```") {
      blocks.push(current.join("\n"));
      current = null;
    } else if (current !== null) current.push(line);
  }
  if (current !== null) throw new Error(`an unclosed \`\`\`sh block in "${title}"`);
  return blocks;
}

/** One bash process fed the blocks one at a time; each block's output is collected up to a marker. */
class Terminal {
  private readonly child: ChildProcess;
  private output = "";
  private exit: number | null | undefined;

  constructor(env: NodeJS.ProcessEnv) {
    // detached: its own process group, so everything it starts in the background is killed with it
    this.child = spawn("bash", ["--noprofile", "--norc"], { cwd: REPO, env, detached: true, stdio: ["pipe", "pipe", "pipe"] });
    this.child.stdout!.on("data", (chunk: Buffer) => (this.output += chunk.toString()));
    this.child.stderr!.on("data", (chunk: Buffer) => (this.output += chunk.toString()));
    this.child.once("exit", (code) => (this.exit = code));
    this.child.stdin!.write("set -euo pipefail\nexec 2>&1\n");
  }

  /**
   * Runs `block`; resolves with what it printed, rejects when bash exits (a command failed), on timeout, or as soon
   * as `stuck` names a reason (a wait loop that can never end: its command refused, a background process gone).
   */
  async run(block: string, index: number, stuck: (output: string) => string | null): Promise<string> {
    const marker = `@@walkthrough-block-${index}-done@@`;
    const from = this.output.length;
    this.child.stdin!.write(`${block}\necho '${marker}'\n`);
    const deadline = Date.now() + BLOCK_TIMEOUT_MS;
    for (;;) {
      const at = this.output.indexOf(marker, from);
      if (at >= 0) return this.output.slice(from, at);
      if (this.exit !== undefined) throw new Error(`exited with ${this.exit}:\n${this.output.slice(from)}`);
      const reason = stuck(this.output.slice(from));
      if (reason !== null) throw new Error(`${reason}:\n${this.output.slice(from)}`);
      if (Date.now() > deadline) throw new Error(`no end after ${BLOCK_TIMEOUT_MS / 1000} s:\n${this.output.slice(from)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Kills the whole process group (bash, and the node and relayer it started in the background). */
  async kill(): Promise<void> {
    for (const signal of ["SIGTERM", "SIGKILL"] as const) {
      try {
        process.kill(-this.child.pid!, signal);
      } catch {
        return; // the group is gone
      }
      await new Promise((r) => setTimeout(r, signal === "SIGTERM" ? 3_000 : 200));
    }
  }
}

describe(`README: "${SECTION}" (its sh blocks run as written)`, function () {
  this.timeout(300_000);

  it("deploys, bills the LiteLLM calls, releases after the window and pays each provider's payee exactly its credits", async function () {
    const started = Date.now();
    const blocks = sectionBlocks(readFileSync(join(REPO, "README.md"), "utf8"), SECTION);
    expect(blocks.length, "sh blocks in the section").to.be.greaterThan(5);

    const walk = mkdtempSync(join(tmpdir(), "agentgpt-walk-"));
    const deploymentsDir = mkdtempSync(join(tmpdir(), "agentgpt-walk-deployments-"));
    const prefix = uniquePrefix("walk");
    const nodePort = await freePort();
    const relayerPort = await freePort();
    const terminal = new Terminal({
      ...process.env,
      NODE_PORT: String(nodePort),
      RELAYER_PORT: String(relayerPort),
      REDIS_PREFIX: prefix,
      WALK: walk,
      AGENTGPT_DEPLOYMENTS_DIR: deploymentsDir,
    });
    const rpc = new JsonRpcProvider(`http://127.0.0.1:${nodePort}`, undefined, { staticNetwork: true });
    const outputs: string[] = [];
    const logs = () =>
      ["node.log", "relayer.log"]
        .filter((f) => existsSync(join(walk, f)))
        .map((f) => `--- ${f} (end) ---\n${readFileSync(join(walk, f), "utf8").slice(-6_000)}`)
        .join("\n");
    let stoppedByReadme = false;
    let balancesBefore: Record<keyof typeof PAYEES, bigint> | undefined;
    try {
      for (const [index, block] of blocks.entries()) {
        const last = index === blocks.length - 1;
        if (last) {
          await beforeStop();
          stoppedByReadme = true;
        }
        if (/provider withdraw/.test(block) && balancesBefore === undefined) balancesBefore = await payeeBalances();
        try {
          outputs.push(await terminal.run(block, index, stuck));
        } catch (error) {
          throw new Error(`README block ${index + 1} of "${SECTION}" failed:\n${block}\n--- output ---\n${(error as Error).message}\n${logs()}`);
        }
      }
      // the stop block ended the relayer and the node
      expect(await rpc.getBlockNumber().then(() => "answers", () => "stopped")).to.equal("stopped");
      const relayerPid = Number(readFileSync(join(walk, "relayer.pid"), "utf8"));
      expect(alive(relayerPid), "relayer still running after the stop block").to.equal(false);
    } finally {
      rpc.destroy();
      await terminal.kill();
      const redis = testRedis();
      await dropPrefix(redis, prefix).finally(() => redis.quit());
      rmSync(walk, { recursive: true, force: true });
      rmSync(deploymentsDir, { recursive: true, force: true });
    }
    console.log(`      walk-through: ${blocks.length} blocks in ${((Date.now() - started) / 1000).toFixed(1)} s`);

    /** A wait loop of the section that cannot end: a command inside it refused by the option parser (commander's
     * "error: unknown option ..."), or the node or relayer it waits for exited. */
    function stuck(output: string): string | null {
      const refused = /^(error: .*|agentgpt: unexpected error.*)$/m.exec(output);
      if (refused !== null) return `a command refused: ${refused[1]}`;
      for (const name of ["node", "relayer"]) {
        const file = join(walk, `${name}.pid`);
        if (existsSync(file) && !stoppedByReadme && !alive(Number(readFileSync(file, "utf8")))) return `the ${name} started in the background exited`;
      }
      return null;
    }

    async function contracts() {
      const deployment = await loadDeployment(31337, { deploymentsDir });
      return {
        router: AutoPayLLM__factory.connect(deployment.addresses.autoPayLLM, rpc),
        agpt: AGPTToken__factory.connect(deployment.addresses.agpt, rpc),
      };
    }

    async function payeeBalances(): Promise<Record<keyof typeof PAYEES, bigint>> {
      const { agpt } = await contracts();
      return { openai: await agpt.balanceOf(PAYEES.openai), groq: await agpt.balanceOf(PAYEES.groq) };
    }

    /** Before the stop block, while the node runs: the money, read back from the chain and from the blocks' output. */
    async function beforeStop(): Promise<void> {
      const text = outputs.join("\n");
      const at = (pattern: RegExp) => outputs.findIndex((o) => pattern.test(o));
      // the POST: 3 logs, 2 queued, the rate-limited failure unbillable
      expect(text).to.match(/"received":3,"format":"json_array","queued":2,"unbillable":1,/);
      // the monitor saw both calls settled
      expect(text).to.match(/openai\s*│\s*1\s*│\s*0\.1956\s/);
      expect(text).to.match(/groq\s*│\s*1\s*│\s*0\.010625\s/);
      // credits shown after the release, then 0 after the withdrawals
      const released = outputs[at(/provider\s+payee\s+credits/)]!;
      expect(released, "provider release/credits output").to.match(new RegExp(`openai\\s+${PAYEES.openai}\\s+0\\.1956 AGPT`));
      expect(released).to.match(new RegExp(`groq\\s+${PAYEES.groq}\\s+0\\.010625 AGPT`));
      expect(text).to.contain("Withdrew 0.1956 AGPT of openai's credits").and.to.contain("Withdrew 0.010625 AGPT of groq's credits");

      const { router } = await contracts();
      const settled = await router.queryFilter(router.filters.BatchSettled(), 0);
      expect(settled.length, "batches settled").to.equal(2);
      const credited = await router.queryFilter(router.filters.ProviderCredited(), 0);
      const sum = (id: bigint) => credited.filter((e) => e.args.provider === id).reduce((s, e) => s + e.args.amount, 0n);
      const after = await payeeBalances();
      for (const name of ["openai", "groq"] as const) {
        const id = await router.providerId(name);
        expect(sum(id), `${name} credited`).to.equal(EXPECTED[name]);
        expect(await router.credits(Number(id)), `${name} credits left`).to.equal(0n);
        expect(after[name] - balancesBefore![name], `${name} payee received`).to.equal(EXPECTED[name]);
      }
      expect(await router.totalEscrow(), "escrow left").to.equal(0n);
    }
  });
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
