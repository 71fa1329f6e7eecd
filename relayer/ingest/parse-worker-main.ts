/**
 * A parse worker thread: receives POST bodies as bytes, answers their ParsedBatch. The configuration arrives
 * once, in workerData.
 */
import { parentPort, workerData } from "node:worker_threads";

import type { RelayerConfig } from "../config/index.js";
import { transferablesOf } from "../queue/index.js";
import { batchContext, BodyJoiner, parseBatch } from "./parse-batch.js";

const port = parentPort;
if (port === null) throw new Error("parse-worker-main.ts runs only as a worker thread (see parse-pool.ts)");

const context = batchContext((workerData as { config: RelayerConfig }).config);
const joiner = new BodyJoiner();

port.on("message", (message: { id: number; chunks: Uint8Array[]; receivedAt: number }) => {
  try {
    const batch = parseBatch(joiner.join(message.chunks), message.receivedAt, context);
    // The encoded receipts and entries move back without a copy.
    port.postMessage({ id: message.id, batch }, batch.ok ? transferablesOf(batch.prepared) : []);
  } catch (error) {
    port.postMessage({ id: message.id, error: error instanceof Error ? error.message : String(error) });
  }
});
port.postMessage({ ready: true });
