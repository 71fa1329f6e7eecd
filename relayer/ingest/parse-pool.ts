/**
 * Where POST bodies are parsed. Decoding, JSON.parse and validation of a 512-log body (about 3 MB with prompts)
 * cost tens of milliseconds of CPU: done on the request thread they serialize every POST. `WorkerBatchParser`
 * runs them on a pool of worker threads (server.parse_workers), so the request thread only moves bytes and talks
 * to Redis. `InlineBatchParser` does the same work in-thread (parse_workers: 0).
 *
 * A worker that dies fails its POSTs with an error (answered 500, nothing recorded, LiteLLM may re-send) and is
 * replaced.
 */
import { Worker } from "node:worker_threads";

import type { RelayerConfig } from "../config/index.js";
import { type BatchContext, batchContext, BodyJoiner, parseBatch, type ParsedBatch } from "./parse-batch.js";

export interface BatchParser {
  /** `body` is the raw POST body, in the chunks it arrived in; they may be transferred to a worker (do not reuse them). */
  parse(body: readonly Buffer[], receivedAt: number): Promise<ParsedBatch>;
  close(): Promise<void>;
}

export class InlineBatchParser implements BatchParser {
  private readonly context: BatchContext;
  private readonly joiner = new BodyJoiner();
  constructor(config: RelayerConfig) {
    this.context = batchContext(config);
  }
  async parse(body: readonly Buffer[], receivedAt: number): Promise<ParsedBatch> {
    return parseBatch(this.joiner.join(body), receivedAt, this.context);
  }
  async close(): Promise<void> {}
}

interface Task {
  readonly resolve: (batch: ParsedBatch) => void;
  readonly reject: (error: Error) => void;
}

interface Slot {
  worker: Worker;
  readonly tasks: Map<number, Task>;
}

export class ParseWorkerError extends Error {
  override readonly name = "ParseWorkerError";
  readonly code = "PARSE_WORKER_FAILED";
}

/**
 * Run from the TypeScript sources (tsx, in a clone), a thread needs tsx's loader first: parse-worker.mjs registers
 * it. Compiled (dist/, a production install), the thread runs the worker's JavaScript directly.
 */
const WORKER_URL = import.meta.url.endsWith(".ts") ? new URL("./parse-worker.mjs", import.meta.url) : new URL("./parse-worker-main.js", import.meta.url);

export class WorkerBatchParser implements BatchParser {
  private readonly slots: Slot[] = [];
  private nextId = 0;
  private closed = false;

  private constructor(private readonly config: RelayerConfig) {}

  /** Starts `size` workers and waits until each has loaded the configuration. */
  static async start(config: RelayerConfig, size: number): Promise<WorkerBatchParser> {
    const pool = new WorkerBatchParser(config);
    try {
      for (let i = 0; i < size; i++) pool.slots.push({ worker: await pool.spawn(i), tasks: new Map() });
    } catch (error) {
      await pool.close();
      throw error;
    }
    return pool;
  }

  parse(body: readonly Buffer[], receivedAt: number): Promise<ParsedBatch> {
    if (this.closed) return Promise.reject(new ParseWorkerError("the parse pool is closed"));
    // The least busy worker takes it.
    let slot = this.slots[0]!;
    for (const candidate of this.slots) if (candidate.tasks.size < slot.tasks.size) slot = candidate;
    const id = this.nextId++;
    // Move the bytes without copying where a chunk owns its ArrayBuffer (socket reads do); copy the others
    // (a chunk may be a view on Node's shared pool, which must not be transferred).
    const transfer: ArrayBuffer[] = [];
    const chunks = body.map((chunk) => {
      if (chunk.byteOffset === 0 && chunk.byteLength === chunk.buffer.byteLength && chunk.buffer instanceof ArrayBuffer) {
        transfer.push(chunk.buffer);
        return new Uint8Array(chunk.buffer);
      }
      return new Uint8Array(chunk);
    });
    return new Promise<ParsedBatch>((resolve, reject) => {
      slot.tasks.set(id, { resolve, reject });
      slot.worker.postMessage({ id, chunks, receivedAt }, transfer);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.slots.map((slot) => slot.worker.terminate()));
  }

  private spawn(index: number): Promise<Worker> {
    const worker = new Worker(WORKER_URL, {
      workerData: { config: this.config },
      // A larger young generation: parsing allocates many short-lived objects per body.
      resourceLimits: { maxYoungGenerationSizeMb: 64 },
    });
    worker.on("message", (message: { id: number; batch?: ParsedBatch; error?: string }) => {
      const slot = this.slots.find((candidate) => candidate.worker === worker);
      const task = slot?.tasks.get(message.id);
      if (slot === undefined || task === undefined) return;
      slot.tasks.delete(message.id);
      if (message.batch !== undefined) task.resolve(message.batch);
      else task.reject(new ParseWorkerError(message.error ?? "the parse worker failed"));
    });
    const replace = (reason: string) => {
      const slot = this.slots.find((candidate) => candidate.worker === worker);
      if (slot === undefined) return;
      for (const task of slot.tasks.values()) task.reject(new ParseWorkerError(reason));
      slot.tasks.clear();
      if (this.closed) return;
      this.spawn(index).then(
        (fresh) => {
          slot.worker = fresh;
        },
        () => undefined,
      );
    };
    worker.on("error", (error) => replace(`parse worker ${index} failed: ${error.message}`));
    worker.on("exit", (code) => replace(`parse worker ${index} exited (code ${code})`));
    return new Promise<Worker>((resolve, reject) => {
      const onReady = (message: unknown) => {
        if ((message as { ready?: boolean }).ready === true) {
          worker.off("message", onReady);
          resolve(worker);
        }
      };
      worker.on("message", onReady);
      worker.once("error", reject);
    });
  }
}

/** The parser for server.parse_workers: 0 = in the request thread. */
export function createBatchParser(config: RelayerConfig, workers: number): Promise<BatchParser> {
  return workers === 0 ? Promise.resolve(new InlineBatchParser(config)) : WorkerBatchParser.start(config, workers);
}
