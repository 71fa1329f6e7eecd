/**
 * The demo's chain: a `hardhat node --hostname 127.0.0.1` child process on a free loopback port (the embedded
 * Hardhat network, EDR), or an existing local node given with `--rpc`. The demo moves the chain's clock past the
 * dispute window, so only development chains are accepted.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { createServer } from "node:net";

import { openChain, type ChainConnection } from "../chain/index.js";
import { LOCAL_CHAIN_IDS } from "../chain/networks.js";
import { hardhatCli, REPO_ROOT } from "./build.js";
import { exited } from "./cleanup.js";
import { DemoError } from "./errors.js";

export interface LocalChain {
  readonly connection: ChainConnection;
  readonly url: string;
  /** the node process when the demo started it (null with --rpc) */
  readonly child: ChildProcess | null;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === "string") throw new Error("no free port");
  return address.port;
}

/** Connects to `rpc`, which must be a local development node (chain 31337 or 1337). */
export async function useExistingChain(rpc: string): Promise<LocalChain> {
  const connection = await openChain({ rpc });
  if (!LOCAL_CHAIN_IDS.has(connection.chainId)) {
    connection.provider.destroy();
    throw new DemoError(`--rpc ${connection.rpcLabel} serves chain ${connection.chainId}: the demo moves the chain's clock, so it runs only on a development node (Hardhat 31337, Anvil 1337); omit --rpc to start one`);
  }
  return { connection, url: rpc, child: null, stop: async () => connection.provider.destroy() };
}

/**
 * Starts `hardhat node --hostname 127.0.0.1 --port <free>` and waits until it answers (60 s at most). `onSpawn`
 * sees the process as soon as it exists, so an interruption while it starts can still stop it.
 */
export async function startHardhatNode(onSpawn?: (child: ChildProcess) => void): Promise<LocalChain> {
  const port = await freePort();
  const child = spawn(process.execPath, [hardhatCli(), "node", "--hostname", "127.0.0.1", "--port", String(port)], {
    cwd: REPO_ROOT,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, HARDHAT_DISABLE_TELEMETRY_PROMPT: "true" },
  });
  onSpawn?.(child);
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGTERM");
    if (!(await exited(child, 5000))) {
      child.kill("SIGKILL");
      await exited(child, 2000);
    }
  };
  let output = "";
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new DemoError(`hardhat node did not start within 60 s:\n${output.slice(-2000)}`)), 60_000);
      const onData = (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes("Started HTTP and WebSocket JSON-RPC server")) {
          clearTimeout(timer);
          resolve();
        }
      };
      child.stdout.on("data", onData);
      child.stderr.on("data", onData);
      child.once("exit", (code) => {
        clearTimeout(timer);
        reject(new DemoError(`hardhat node exited with ${code} before it started:\n${output.slice(-2000)}`));
      });
      child.once("error", (error) => {
        clearTimeout(timer);
        reject(new DemoError(`hardhat node could not be started: ${error.message}`));
      });
    });
  } catch (error) {
    await stop();
    throw error;
  }
  // keep draining its output (it logs every request) so the pipe never fills
  child.stdout.removeAllListeners("data");
  child.stderr.removeAllListeners("data");
  child.stdout.resume();
  child.stderr.resume();
  const url = `http://127.0.0.1:${port}`;
  const connection = await openChain({ rpc: url });
  return {
    connection,
    url,
    child,
    stop: async () => {
      connection.provider.destroy();
      await stop();
    },
  };
}
