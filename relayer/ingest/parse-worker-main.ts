/**
 * A parse worker thread: receives POST bodies as bytes, answers their ParsedBatch. The configuration arrives
 * once, in workerData.
 */
import { parentPort, workerData } from "node:worker_threads";

import type { RelayerConfig } from "../config/index.js";
import { batchContext, parseBatch } from "./parse-batch.js";

const port = parentPort;
if (port === null) throw new Error("parse-worker-main.ts runs only as a worker thread (see parse-pool.ts)");

const context = batchContext((workerData as { config: RelayerConfig }).config);
const decoder = new TextDecoder("utf-8");

port.on("message", (message: { id: number; bytes: Uint8Array; receivedAt: number }) => {
  try {
    const batch = parseBatch(decoder.decode(message.bytes), message.receivedAt, context);
    port.postMessage({ id: message.id, batch });
  } catch (error) {
    port.postMessage({ id: message.id, error: error instanceof Error ? error.message : String(error) });
  }
});
port.postMessage({ ready: true });
