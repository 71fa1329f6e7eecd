/** A real Redis for tests: the local one (REDIS_URL or 127.0.0.1:6379), with a unique key prefix per test. */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";

import { Redis } from "ioredis";

import { deleteKeysWithPrefix } from "../../relayer/queue/redis-connection.js";

export const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";

export function uniquePrefix(label = "t"): string {
  return `${label}-${randomBytes(5).toString("hex")}`;
}

export function testRedis(url = REDIS_URL): Redis {
  return new Redis(url, { maxRetriesPerRequest: null, lazyConnect: false });
}

/** Deletes every key containing `prefix` (our keys all start with `{<prefix>` or `<prefix>`). */
export function dropPrefix(redis: Redis, prefix: string): Promise<void> {
  return deleteKeysWithPrefix(redis, prefix);
}

/**
 * A `redis-server` of the test's own on 127.0.0.1:`port`, with every write fsynced to its append-only file in
 * `dir`: SIGKILL it and start it again on the same `dir`, and it comes back with what it had acknowledged.
 * Resolves once it answers PING.
 */
export async function startAofRedis(port: number, dir: string): Promise<ChildProcess> {
  const server = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--appendonly", "yes", "--appendfsync", "always", "--save", ""], {
    stdio: "ignore",
  });
  for (let i = 0; i < 200; i++) {
    const probe = new Redis(`redis://127.0.0.1:${port}`, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    probe.on("error", () => undefined);
    const ok = await probe.connect().then(() => probe.ping()).then(
      () => true,
      () => false,
    );
    probe.disconnect();
    if (ok) return server;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  server.kill("SIGKILL");
  throw new Error(`redis-server did not start on port ${port}`);
}
