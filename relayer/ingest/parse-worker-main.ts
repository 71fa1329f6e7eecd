/**
 * A parse worker thread: receives POST bodies as bytes in shared memory (see parse-pool.ts), answers their
 * ParsedBatch. The configuration arrives once, in workerData. Nothing built from a body refers to its memory (the
 * readers copy what they build): the pool reuses it for another body once this thread has answered.
 */
import { parentPort, workerData } from "node:worker_threads";

import type { RelayerConfig } from "../config/index.js";
import { transferablesOf } from "../queue/index.js";
import { batchContext, parseBatch } from "./parse-batch.js";

const port = parentPort;
if (port === null) throw new Error("parse-worker-main.ts runs only as a worker thread (see parse-pool.ts)");

const context = batchContext((workerData as { config: RelayerConfig }).config);
port.on("message", (message: { id: number; memory: SharedArrayBuffer; length: number; receivedAt: number }) => {
  try {
    const batch = parseBatch(Buffer.from(message.memory, 0, message.length), message.receivedAt, context);
    if (!batch.ok) {
      port.postMessage({ id: message.id, batch });
      return;
    }
    // The encoded receipts move back without a copy; the entries (512 small objects for a 512-log POST) as one JSON
    // text, which costs a third of what cloning them one by one did (see parse-pool.ts).
    const entries = JSON.stringify(batch.prepared.map((part) => part.entries));
    const prepared = batch.prepared.map(({ chains, packed }) => ({ chains, packed }));
    port.postMessage({ id: message.id, batch: { ...batch, prepared }, entries }, transferablesOf(batch.prepared));
  } catch (error) {
    port.postMessage({ id: message.id, error: error instanceof Error ? error.message : String(error) });
  }
});
port.postMessage({ ready: true });
