/**
 * The demo's Redis: `REDIS_URL`, else 127.0.0.1:6379; when neither answers and `redis-server` is on the PATH, a
 * private one on a free loopback port (no persistence, its files in the demo's temporary directory), stopped at the
 * end. Otherwise a message that says how to start one.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";

import { Redis } from "ioredis";

import { exited } from "./cleanup.js";
import { DemoError } from "./errors.js";
import { freePort } from "./local-chain.js";

export interface DemoRedis {
  readonly url: string;
  /** for people: "redis://127.0.0.1:6379 (REDIS_URL)" */
  readonly label: string;
  readonly started: boolean;
  stop(): Promise<void>;
}

/** `redis://host:port` only: a REDIS_URL may carry a password. */
function hostOf(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.protocol}//${parsed.host}`;
  } catch {
    return "<invalid REDIS_URL>";
  }
}

async function answers(url: string): Promise<boolean> {
  const redis = new Redis(url, { lazyConnect: true, connectTimeout: 1500, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null });
  redis.on("error", () => undefined);
  try {
    await redis.connect();
    return (await redis.ping()) === "PONG";
  } catch {
    return false;
  } finally {
    redis.disconnect();
  }
}

/** `onSpawn` sees a private redis-server as soon as it exists, so an interruption while it starts can still stop it. */
export async function demoRedis(
  env: Readonly<Record<string, string | undefined>>,
  tempDir: string,
  onStart: (text: string) => void,
  onSpawn?: (child: ChildProcess) => void,
): Promise<DemoRedis> {
  const fromEnv = env.REDIS_URL;
  const url = fromEnv !== undefined && fromEnv !== "" ? fromEnv : "redis://127.0.0.1:6379";
  if (await answers(url)) return { url, label: `${hostOf(url)}${fromEnv ? " (REDIS_URL)" : ""}`, started: false, stop: async () => undefined };
  if (fromEnv !== undefined && fromEnv !== "") {
    throw new DemoError(
      `REDIS_URL: no Redis answers at ${hostOf(url)}: start one there (\`redis-server --port <port>\`, or \`docker run -d -p <port>:6379 redis:7\`), ` +
        "point REDIS_URL at a running one, or unset it to use 127.0.0.1:6379",
      3,
    );
  }
  const port = await freePort();
  let child: ChildProcess;
  try {
    child = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", tempDir], { stdio: "ignore" });
    onSpawn?.(child);
    await Promise.race([once(child, "spawn"), once(child, "error").then(([error]) => Promise.reject(error as Error))]);
  } catch {
    throw new DemoError(
      "the demo needs Redis 7 and none answers at 127.0.0.1:6379 (nor is redis-server installed to start one): " +
        "start one with `redis-server` (apt install redis-server / brew install redis) or `docker run -d -p 6379:6379 redis:7`, " +
        "or point REDIS_URL at one",
      3,
    );
  }
  const privateUrl = `redis://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGTERM");
    if (!(await exited(child, 3000))) child.kill("SIGKILL");
  };
  for (let i = 0; i < 100; i++) {
    if (await answers(privateUrl)) {
      onStart(`no Redis at 127.0.0.1:6379: started a private redis-server on port ${port} for the demo`);
      return { url: privateUrl, label: `${privateUrl} (private, stopped at the end)`, started: true, stop };
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await stop();
  throw new DemoError("redis-server did not answer within 5 s: start Redis yourself (`redis-server`) or set REDIS_URL", 3);
}
