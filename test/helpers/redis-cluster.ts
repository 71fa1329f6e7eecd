/**
 * A real Redis Cluster for tests: `masters` masters with `replicasPerMaster` replicas each, every node a Debian
 * `redis-server --cluster-enabled yes` on 127.0.0.1 in a temporary folder of its own, joined by
 * `redis-cli --cluster create`. Reusable by any test (the fleet chaos test): start it, hand `seeds` to the relayer
 * (redis.cluster), fail a master over, stop it.
 *
 * ```ts
 * const cluster = await startRedisCluster({ masters: 3, replicasPerMaster: 1 });
 * // config: redis: { cluster: cluster.seeds }   or   url: cluster.url
 * await cluster.failover();   // a replica takes over one master (CLUSTER FAILOVER: no acknowledged write lost)
 * await cluster.stop();
 * ```
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

import { Redis } from "ioredis";

const run = promisify(execFile);

export interface ClusterNodeProcess {
  readonly port: number;
  readonly dir: string;
  process: ChildProcess;
}

export interface RedisClusterHandle {
  /** every node, masters first as created (roles change after a failover: see `roles`) */
  readonly nodes: readonly ClusterNodeProcess[];
  /** "127.0.0.1:<port>" of every node (for redis.cluster) */
  readonly seeds: string[];
  /** redis+cluster://127.0.0.1:<port>,... */
  readonly url: string;
  /** port -> "master" | "slave" now */
  roles(): Promise<Map<number, "master" | "slave">>;
  /**
   * Promotes a replica of the master of `port` (default: the first master found) with CLUSTER FAILOVER (the replica
   * catches up first, so no acknowledged write is lost) and resolves when every node agrees on the new map.
   * Returns the old and new master's ports.
   */
  failover(port?: number): Promise<{ from: number; to: number }>;
  /** Signals one node (default SIGKILL: a master's death; its replica is promoted after node_timeout); resolves on exit */
  kill(port: number, signal?: NodeJS.Signals): Promise<void>;
  /** Starts a stopped node again on its port and folder (it rejoins with its nodes.conf and append-only file) */
  restart(port: number): Promise<void>;
  /** Resolves when every running node reports cluster_state:ok */
  ready(): Promise<void>;
  stop(): Promise<void>;
}

async function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

/** `count` ports p whose cluster bus port p + 10000 is free too. */
async function clusterPorts(count: number): Promise<number[]> {
  const ports: number[] = [];
  for (let attempt = 0; ports.length < count && attempt < 2000; attempt++) {
    const port = 20000 + Math.floor(Math.random() * 25000);
    if (ports.includes(port) || ports.includes(port + 10000) || ports.includes(port - 10000)) continue;
    if ((await portFree(port)) && (await portFree(port + 10000))) ports.push(port);
  }
  if (ports.length < count) throw new Error("no free ports for a Redis Cluster");
  return ports;
}

async function cli(port: number, ...args: string[]): Promise<string> {
  const { stdout } = await run("redis-cli", ["-h", "127.0.0.1", "-p", String(port), ...args], { timeout: 30_000 });
  return stdout;
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (await check().catch(() => false)) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`Redis Cluster: ${what} within ${timeoutMs} ms`);
}

function startNode(port: number, dir: string): ChildProcess {
  return spawn(
    "redis-server",
    [
      "--port", String(port),
      "--bind", "127.0.0.1",
      "--dir", dir,
      "--cluster-enabled", "yes",
      "--cluster-config-file", join(dir, "nodes.conf"),
      "--cluster-node-timeout", "2000",
      "--appendonly", "yes",
      "--appendfsync", "everysec",
      "--save", "",
      "--protected-mode", "no",
    ],
    { stdio: "ignore" },
  );
}

export async function startRedisCluster(options: { masters?: number; replicasPerMaster?: number } = {}): Promise<RedisClusterHandle> {
  const masters = options.masters ?? 3;
  const replicas = options.replicasPerMaster ?? 1;
  const ports = await clusterPorts(masters * (1 + replicas));
  const nodes: ClusterNodeProcess[] = ports.map((port) => {
    const dir = mkdtempSync(join(tmpdir(), `redis-cluster-${port}-`));
    return { port, dir, process: startNode(port, dir) };
  });
  const stop = async () => {
    for (const node of nodes) node.process.kill("SIGKILL");
    await Promise.all(nodes.map((node) => new Promise((resolve) => (node.process.exitCode !== null || node.process.signalCode !== null ? resolve(null) : node.process.once("exit", resolve)))));
    for (const node of nodes) rmSync(node.dir, { recursive: true, force: true });
  };
  try {
    for (const node of nodes) await waitFor(`node ${node.port} answers PING`, async () => (await cli(node.port, "ping")).trim() === "PONG", 10_000);
    await run(
      "redis-cli",
      ["--cluster", "create", ...ports.map((port) => `127.0.0.1:${port}`), "--cluster-replicas", String(replicas), "--cluster-yes"],
      { timeout: 60_000 },
    );
    for (const node of nodes) {
      await waitFor(`node ${node.port} reports cluster_state:ok`, async () => (await cli(node.port, "cluster", "info")).includes("cluster_state:ok"));
    }
    await waitFor("every replica is in sync", async () => {
      for (const node of nodes) {
        const info = await cli(node.port, "info", "replication");
        if (info.includes("role:slave") && !info.includes("master_link_status:up")) return false;
      }
      return true;
    });
  } catch (error) {
    await stop();
    throw error;
  }

  const roles = async () => {
    const out = new Map<number, "master" | "slave">();
    for (const node of nodes) {
      if (node.process.exitCode !== null || node.process.signalCode !== null) continue;
      const info = await cli(node.port, "info", "replication").catch(() => "");
      if (info.includes("role:master")) out.set(node.port, "master");
      else if (info.includes("role:slave")) out.set(node.port, "slave");
    }
    return out;
  };

  return {
    nodes,
    seeds: ports.map((port) => `127.0.0.1:${port}`),
    url: `redis+cluster://${ports.map((port) => `127.0.0.1:${port}`).join(",")}`,
    roles,
    async failover(port?: number) {
      const now = await roles();
      const from = port ?? [...now].find(([, role]) => role === "master")![0];
      let to: number | undefined;
      for (const node of nodes) {
        if (now.get(node.port) !== "slave") continue;
        const info = await cli(node.port, "info", "replication");
        if (info.includes(`master_port:${from}`)) to = node.port;
      }
      if (to === undefined) throw new Error(`no replica of ${from} to fail over to`);
      const answer = (await cli(to, "cluster", "failover")).trim();
      if (answer !== "OK") throw new Error(`CLUSTER FAILOVER on ${to}: ${answer}`);
      await waitFor(`${to} became master`, async () => (await cli(to!, "info", "replication")).includes("role:master"));
      await waitFor("every node agrees on the new map", async () => {
        for (const node of nodes) {
          if (node.process.exitCode !== null || node.process.signalCode !== null) continue;
          if (!(await cli(node.port, "cluster", "info")).includes("cluster_state:ok")) return false;
        }
        return true;
      });
      return { from, to };
    },
    async kill(port: number, signal: NodeJS.Signals = "SIGKILL") {
      const node = nodes.find((one) => one.port === port);
      if (node === undefined || node.process.exitCode !== null || node.process.signalCode !== null) return;
      const exited = new Promise((resolve) => node.process.once("exit", resolve));
      node.process.kill(signal);
      await exited;
    },
    async restart(port: number) {
      const node = nodes.find((one) => one.port === port);
      if (node === undefined) throw new Error(`no node on ${port}`);
      node.process = startNode(node.port, node.dir);
      await waitFor(`node ${port} answers PING`, async () => (await cli(port, "ping")).trim() === "PONG", 10_000);
    },
    async ready() {
      for (const node of nodes) {
        if (node.process.exitCode !== null || node.process.signalCode !== null) continue;
        await waitFor(`node ${node.port} reports cluster_state:ok`, async () => (await cli(node.port, "cluster", "info")).includes("cluster_state:ok"));
      }
    },
    stop,
  };
}

/** Keys per slot over every master: the most keys in one slot, and the share of all keys it holds. */
export async function slotSpread(seeds: readonly string[], match: string): Promise<{ keys: number; slots: number; maxSlotKeys: number; maxShare: number }> {
  const counts = new Map<number, number>();
  const seen = new Set<string>();
  for (const seed of seeds) {
    const [host, port] = seed.split(":");
    const node = new Redis({ host: host!, port: Number(port), lazyConnect: true, maxRetriesPerRequest: 1 });
    node.on("error", () => undefined);
    try {
      await node.connect();
      const info = await node.info("replication");
      if (!info.includes("role:master")) continue;
      let cursor = "0";
      do {
        const [next, keys] = await node.scan(cursor, "MATCH", match, "COUNT", 1000);
        cursor = next;
        const slots = await Promise.all(keys.map((key) => node.cluster("KEYSLOT", key) as Promise<number>));
        keys.forEach((key, index) => {
          if (seen.has(key)) return;
          seen.add(key);
          counts.set(slots[index]!, (counts.get(slots[index]!) ?? 0) + 1);
        });
      } while (cursor !== "0");
    } finally {
      node.disconnect();
    }
  }
  const maxSlotKeys = Math.max(0, ...counts.values());
  return { keys: seen.size, slots: counts.size, maxSlotKeys, maxShare: seen.size === 0 ? 0 : maxSlotKeys / seen.size };
}
