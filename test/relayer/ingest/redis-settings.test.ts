/**
 * Ingest refuses a Redis that may evict keys, against a real redis-server of the test's own: an evicted dedupe record
 * would bill a call logged again a second time, an evicted chunk would lose acknowledged receipts. At start it refuses
 * with the fix; set while running, /readyz reports it.
 */
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { expect } from "chai";
import { Redis } from "ioredis";

import { loadRelayerConfig } from "../../../relayer/config/index.js";
import { startIngest } from "../../../relayer/ingest/index.js";
import { RedisSettingsError } from "../../../relayer/queue/index.js";
import { ProcessTelemetry } from "../../../relayer/telemetry/process-telemetry.js";
import { freePort } from "../../helpers/hardhat-node.js";
import { startAofRedis } from "../../helpers/redis.js";
import { call, post, uniquePrefix, writeConfig } from "./harness.js";

describe("relayer/ingest: a Redis that may evict keys is refused", function () {
  this.timeout(30_000);
  let server: ChildProcess | undefined;
  let dir: string;
  let admin: Redis;
  let url: string;

  beforeEach(async function () {
    const port = await freePort();
    dir = mkdtempSync(join(tmpdir(), "agentgpt-eviction-"));
    server = await startAofRedis(port, dir);
    url = `redis://127.0.0.1:${port}`;
    admin = new Redis(url);
  });

  afterEach(async function () {
    admin.disconnect();
    server?.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  });

  it("refuses to start under an eviction policy, starts under noeviction, and /readyz fails when a policy is set while running", async function () {
    const config = loadRelayerConfig(writeConfig(uniquePrefix("eviction"), { redisUrl: url }), { env: {} });
    for (const policy of ["volatile-lru", "allkeys-lfu"]) {
      await admin.config("SET", "maxmemory-policy", policy);
      const refused = await startIngest(config, { env: {}, sweep: false, defaultMetrics: false }).then(
        async (runtime) => {
          await runtime.stop();
          return undefined;
        },
        (error: unknown) => error,
      );
      expect(refused, policy).to.be.instanceOf(RedisSettingsError);
      expect((refused as Error).message).to.include(`maxmemory-policy ${policy} on 127.0.0.1:`).and.include("CONFIG SET maxmemory-policy noeviction");
    }
    // nothing was written by the refused starts
    expect(await admin.keys("*")).to.deep.equal([]);

    await admin.config("SET", "maxmemory-policy", "noeviction");
    const telemetry = new ProcessTelemetry({ defaultMetrics: false });
    const runtime = await startIngest(config, { env: {}, sweep: false, defaultMetrics: false, telemetry });
    try {
      expect((await post(runtime.url, JSON.stringify([call()]))).body).to.deep.include({ queued: 1 });
      expect((await telemetry.readiness.report()).ready).to.equal(true);
      await admin.config("SET", "maxmemory-policy", "allkeys-lru");
      const report = await telemetry.readiness.report();
      expect(report.ready).to.equal(false);
      expect(report.failures).to.have.length(1);
      expect(report.failures[0]).to.match(/^ingest redis: Redis may evict keys under memory pressure \(maxmemory-policy allkeys-lru on 127\.0\.0\.1:\d+\)/);
      await admin.config("SET", "maxmemory-policy", "noeviction");
      expect((await telemetry.readiness.report()).ready).to.equal(true);
    } finally {
      await runtime.stop();
    }
  });
});
