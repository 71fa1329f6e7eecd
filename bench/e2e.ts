/**
 * End-to-end benchmark (`npm run bench:e2e`): LiteLLM-style POSTs offered at a steady rate into the real relayer
 * process (`agentgpt relayer start`), settled on a local `hardhat node` that mines a block every second.
 *
 * Measures, per receipt, the time from the ingest acknowledgement (the HTTP 200 of its POST) to its batch being
 * settled and confirmed (the settler's final record), and reports p50/p99, receipts per transaction, gas per
 * receipt, and receipts lost or double-charged (checked against chain state: each payer's on-chain charge equals
 * the sum of its calls' prices, and every receipt is in exactly one final batch). Target: p99 under the batch
 * window plus 3 s; lost and double-charged both 0.
 *
 * Options (environment): BENCH_RATE receipts/s (1000), BENCH_SECONDS (60), BENCH_BATCH_WINDOW_MS (2000),
 * BENCH_MAX_RECEIPTS per batch (5000), BENCH_POST_EVERY_MS (200), REDIS_URL. Writes bench/results/e2e.json.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { availableParallelism, loadavg } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import Table from "cli-table3";

import { LocalArchive } from "../relayer/batcher/local-archive.js";
import { receiptsOutsideBucket } from "../relayer/batcher/batch-file.js";
import { startRelayerEnvironment, type RelayerEnvironment } from "../test/helpers/relayer-environment.js";
import { postSpend, type RelayerProcess } from "../test/helpers/relayer-process.js";
import { chargesByPayer, spendLog, type SpendLog } from "../test/helpers/spend-logs.js";

const RATE = Number(process.env.BENCH_RATE ?? 1000);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 60);
const WINDOW_MS = Number(process.env.BENCH_BATCH_WINDOW_MS ?? 2000);
const MAX_RECEIPTS = Number(process.env.BENCH_MAX_RECEIPTS ?? 5000);
const POST_EVERY_MS = Number(process.env.BENCH_POST_EVERY_MS ?? 200);
const PAYERS = 20;

const env: RelayerEnvironment = await startRelayerEnvironment({
  label: "bench-e2e",
  payers: PAYERS,
  deposit: 1_000_000n * 10n ** 18n,
  config: { maxReceipts: MAX_RECEIPTS, maxWait: `${WINDOW_MS}ms`, stuckAfter: "20s" },
});
let relayer: RelayerProcess | undefined;

try {
  const { node, suite, setup, store, prefix } = env;
  await node.rpc("evm_setAutomine", [false]);
  await node.rpc("evm_setIntervalMining", [1000]);
  relayer = await env.spawn();

  // ---- offer load: RATE receipts/s, one POST every POST_EVERY_MS
  const perPost = Math.max(1, Math.round((RATE * POST_EVERY_MS) / 1000));
  const posts = Math.round((SECONDS * 1000) / POST_EVERY_MS);
  const ackAt = new Map<string, number>();
  const sent: SpendLog[] = [];
  const inflight: Promise<void>[] = [];
  const start = performance.now();
  process.stdout.write(`offering ${RATE} receipts/s for ${SECONDS} s (${posts} POSTs of ${perPost}), batch window ${WINDOW_MS} ms\n`);
  for (let p = 0; p < posts; p++) {
    const due = start + p * POST_EVERY_MS;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const logs = Array.from({ length: perPost }, (_, i) =>
      spendLog((p * perPost + i) % PAYERS, i % 4 === 0 ? "mixtral-8x22b" : "gpt-4-turbo", 100 + ((p * 31 + i * 7919) % 3000), prefix),
    );
    sent.push(...logs);
    inflight.push(
      postSpend(setup.url, logs.map((l) => l.entry)).then((response) => {
        if (response.status !== 200) throw new Error(`POST refused: ${response.status} ${JSON.stringify(response.body)}`);
        const now = Date.now();
        for (const log of logs) ackAt.set(String(log.entry.litellm_call_id), now);
      }),
    );
    if (p % Math.round(5000 / POST_EVERY_MS) === 0) process.stdout.write(`  t=${Math.round((performance.now() - start) / 1000)} s, ${sent.length} sent\n`);
  }
  await Promise.all(inflight);
  const offeredSeconds = (performance.now() - start) / 1000;

  // ---- wait until everything is final
  await env.settled(sent.length, { timeoutMs: 180_000, pollMs: 250 });

  // ---- per-receipt latency: ack -> its batch final
  const archive = new LocalArchive(setup.archiveDir);
  const latencies: number[] = [];
  const seen = new Map<string, number>();
  let gasUsed = 0n;
  let outsideBucket = 0;
  const finals = await store.finalIds();
  for (const batchId of finals) {
    const record = (await store.get(batchId))!;
    gasUsed += BigInt(record.gasUsed ?? 0);
    const file = (await archive.read("local", batchId))!;
    outsideBucket += receiptsOutsideBucket(file.receipts.map((r) => r.receipt), file.callsFrom, file.usageBucket).length;
    for (const { receipt } of file.receipts) {
      const id = receipt.litellmCallId ?? receipt.id;
      seen.set(id, (seen.get(id) ?? 0) + 1);
      const ack = ackAt.get(id);
      if (ack !== undefined) latencies.push(record.finalAt! - ack);
    }
  }
  latencies.sort((a, b) => a - b);
  const pct = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN;

  // ---- exactness against chain state
  const lost = sent.filter((log) => !seen.has(String(log.entry.litellm_call_id))).length;
  let doubleCharged = [...seen.values()].filter((n) => n > 1).length;
  const expected = chargesByPayer(sent);
  let chargeMismatches = 0;
  for (const [i, payer] of suite.payers.entries()) {
    const charged = 1_000_000n * 10n ** 18n - (await suite.router.balanceOf(payer.address));
    if (charged !== (expected.get(i) ?? 0n)) chargeMismatches++;
    if (charged > (expected.get(i) ?? 0n)) doubleCharged = Math.max(doubleCharged, 1);
  }

  const results = {
    receipts: sent.length,
    offeredRate: RATE,
    offeredSeconds: Number(offeredSeconds.toFixed(1)),
    batchWindowMs: WINDOW_MS,
    blockTimeMs: 1000,
    confirmations: 1,
    batches: finals.length,
    p50Ms: pct(0.5),
    p99Ms: pct(0.99),
    maxMs: latencies.at(-1) ?? NaN,
    receiptsPerTx: Math.round(sent.length / finals.length),
    gasPerReceipt: Math.round(Number(gasUsed) / sent.length),
    lost,
    doubleCharged,
    payerChargeMismatches: chargeMismatches,
    receiptsOutsideBucket: outsideBucket,
    refusedBatches: (await store.refusedIds()).length,
    targetP99Ms: WINDOW_MS + 3000,
    machine: { cpus: availableParallelism(), loadavg: loadavg().map((l) => Number(l.toFixed(2))) },
    measuredAt: new Date().toISOString(),
  };
  const table = new Table({ head: ["receipts", "batches", "receipts/tx", "gas/receipt", "p50", "p99", "target p99", "lost", "double-charged"] });
  table.push([
    results.receipts,
    results.batches,
    results.receiptsPerTx,
    results.gasPerReceipt,
    `${results.p50Ms} ms`,
    `${results.p99Ms} ms`,
    `${results.targetP99Ms} ms`,
    results.lost,
    results.doubleCharged,
  ]);
  process.stdout.write(`\n${table.toString()}\n`);
  const ok =
    results.p99Ms <= results.targetP99Ms && lost === 0 && doubleCharged === 0 && chargeMismatches === 0 && outsideBucket === 0 && results.refusedBatches === 0;
  process.stdout.write(ok ? "targets met\n" : "TARGETS NOT MET\n");
  const out = join(dirname(fileURLToPath(import.meta.url)), "results", "e2e.json");
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(results, null, 2)}\n`);
  process.stdout.write(`written ${out}\n`);
} finally {
  if (process.env.BENCH_LOGS) writeFileSync(process.env.BENCH_LOGS, relayer?.logs() ?? "");
  await env.close();
}
