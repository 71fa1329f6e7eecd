/**
 * A real `hardhat node` on a free loopback port for tests that go over JSON-RPC, and a runner for the commands a
 * user types (`npm run deploy ...`, `node bin/agentgpt.mjs ...`) pointed at it.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const HARDHAT_CLI = join(REPO, "node_modules", "hardhat", "dist", "src", "cli.js");

export interface LocalNode {
  url: string;
  /** A fresh deployments directory for this node (removed by `stop`). */
  deploymentsDir: string;
  /** Environment pointing `--network localhost` and relayer/chain at this node and directory. */
  env: NodeJS.ProcessEnv;
  rpc<T = unknown>(method: string, params?: unknown[]): Promise<T>;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address !== null ? resolvePort(address.port) : reject()));
    });
  });
}

/** Starts `hardhat node --hostname 127.0.0.1 --port <free>` and waits until it answers. */
export async function startLocalNode(): Promise<LocalNode> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child: ChildProcess = spawn(
    process.execPath,
    [HARDHAT_CLI, "node", "--hostname", "127.0.0.1", "--port", String(port)],
    { cwd: REPO, stdio: ["ignore", "pipe", "pipe"] },
  );
  let log = "";
  child.stdout?.on("data", (chunk: Buffer) => (log = (log + chunk.toString()).slice(-20_000)));
  child.stderr?.on("data", (chunk: Buffer) => (log = (log + chunk.toString()).slice(-20_000)));
  const exited = new Promise<void>((done) => child.once("exit", () => done()));

  let id = 0;
  const rpc = async <T>(method: string, params: unknown[] = []): Promise<T> => {
    const response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: ++id, method, params }),
    });
    const body = (await response.json()) as { result?: T; error?: { message: string } };
    if (body.error !== undefined) throw new Error(`${method}: ${body.error.message}`);
    return body.result as T;
  };

  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`hardhat node exited (${child.exitCode}):\n${log}`);
    try {
      await rpc("eth_chainId");
      break;
    } catch {
      if (Date.now() > deadline) {
        child.kill();
        throw new Error(`hardhat node did not answer on ${url} within 60 s:\n${log}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  const deploymentsDir = await mkdtemp(join(tmpdir(), "agentgpt-deployments-"));
  return {
    url,
    deploymentsDir,
    env: { ...process.env, LOCALHOST_RPC_URL: url, AGENTGPT_DEPLOYMENTS_DIR: deploymentsDir },
    rpc,
    stop: async () => {
      if (child.exitCode === null) {
        child.kill("SIGTERM");
        await Promise.race([exited, new Promise((r) => setTimeout(r, 5_000))]);
        if (child.exitCode === null) child.kill("SIGKILL");
      }
      await rm(deploymentsDir, { recursive: true, force: true });
    },
  };
}

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command as a user would, from the repository root, and collects its output. */
export async function runCommand(
  command: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  timeoutMs = 120_000,
): Promise<CommandResult> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(command, args, { cwd: REPO, env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${command} ${args.join(" ")} timed out after ${timeoutMs} ms\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.once("error", reject);
    child.once("close", (code) => {
      clearTimeout(timer);
      resolveRun({ code: code ?? -1, stdout, stderr });
    });
  });
}

/**
 * `npm run deploy -- --network localhost` against `node`. Up to 5 minutes: `hardhat run` first brings the build up
 * to date, which takes minutes on a busy machine after a contract changed.
 */
export async function deployToNode(node: LocalNode, env: NodeJS.ProcessEnv = node.env): Promise<CommandResult> {
  return runCommand("npm", ["run", "deploy", "--", "--network", "localhost"], env, 300_000);
}
