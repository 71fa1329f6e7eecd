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
import type { PreparedEntry } from "../queue/index.js";
import { type BatchContext, batchContext, BodyJoiner, parseBatch, type ParsedBatch } from "./parse-batch.js";

export interface BatchParser {
  /** `body` is the raw POST body, in the chunks it arrived in; they may be freed (detached) once read: do not reuse them. */
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
  /** the shared memory the body was copied into, free again once the worker answers */
  readonly memory: SharedArrayBuffer;
}

interface Slot {
  worker: Worker;
  readonly tasks: Map<number, Task>;
}

/**
 * Shared memory for bodies on their way to a worker, reused from one POST to the next. Transferring the body's
 * chunks instead (47 ArrayBuffers of 64 KB for a 3 MB body) made every POST 3 MB of new external memory in the
 * worker, which V8 answers with a full garbage collection every few dozen MB (shared memory is not counted so).
 * Once copied, each chunk's memory is freed at once (detached), not left for the request thread's collector,
 * which would then run a full collection of its own every ten POSTs or so. The worker reads the body where it is,
 * with no copy of its own.
 */
class SharedBodies {
  /** bodies larger than this get memory of their own, so one huge POST does not pin its size */
  static readonly KEEP_BYTES = 16 * 1024 * 1024;
  /** free memory, kept up to a few buffers per worker */
  private readonly free: SharedArrayBuffer[] = [];
  constructor(private readonly keep: number) {}

  /** `chunks` copied into shared memory: the memory and the body's length. */
  copy(chunks: readonly Uint8Array[]): { memory: SharedArrayBuffer; length: number } {
    let length = 0;
    for (const chunk of chunks) length += chunk.byteLength;
    let memory: SharedArrayBuffer | undefined;
    for (let i = 0; i < this.free.length; i++) {
      if (this.free[i]!.byteLength >= length) {
        memory = this.free[i]!;
        this.free.splice(i, 1);
        break;
      }
    }
    // new memory is 25 % larger than the body, so bodies of about the same size reuse it
    memory ??= new SharedArrayBuffer(Math.max(length, Math.min(SharedBodies.KEEP_BYTES, Math.ceil(length * 1.25))));
    const view = new Uint8Array(memory);
    let offset = 0;
    for (const chunk of chunks) {
      view.set(chunk, offset);
      offset += chunk.byteLength;
      freeBytes(chunk);
    }
    return { memory, length };
  }

  release(memory: SharedArrayBuffer): void {
    if (memory.byteLength > SharedBodies.KEEP_BYTES) return;
    if (this.free.length < this.keep) this.free.push(memory);
    else {
      // keep the larger ones
      let smallest = 0;
      for (let i = 1; i < this.free.length; i++) if (this.free[i]!.byteLength < this.free[smallest]!.byteLength) smallest = i;
      if (this.free[smallest]!.byteLength < memory.byteLength) this.free[smallest] = memory;
    }
  }
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

/**
 * Frees the memory of bytes that own their whole ArrayBuffer now (ArrayBuffer.prototype.transfer, ES2024: the
 * buffer is detached and its views read as empty), rather than when the collector finds them: V8 answers external
 * memory that grows by a few dozen MB with a full collection. Other bytes, and a buffer that cannot be detached,
 * are left to the collector.
 */
export function freeBytes(bytes: Uint8Array): void {
  const buffer = bytes.buffer;
  if (bytes.byteOffset !== 0 || bytes.byteLength !== buffer.byteLength || !(buffer instanceof ArrayBuffer)) return;
  try {
    (buffer as ArrayBuffer & { transfer?: (length?: number) => ArrayBuffer }).transfer?.(0);
  } catch {
    // not detachable (Node's own pool or a buffer with a detach key): the collector frees it
  }
}

export class WorkerBatchParser implements BatchParser {
  private readonly slots: Slot[] = [];
  private nextId = 0;
  private closed = false;
  private readonly bodies: SharedBodies;

  private constructor(
    private readonly config: RelayerConfig,
    size: number,
  ) {
    this.bodies = new SharedBodies(2 * size);
  }

  /** Starts `size` workers and waits until each has loaded the configuration. */
  static async start(config: RelayerConfig, size: number): Promise<WorkerBatchParser> {
    const pool = new WorkerBatchParser(config, size);
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
    const { memory, length } = this.bodies.copy(body);
    return new Promise<ParsedBatch>((resolve, reject) => {
      slot.tasks.set(id, { resolve, reject, memory });
      slot.worker.postMessage({ id, memory, length, receivedAt });
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
    worker.on("message", (message: { id: number; batch?: ParsedBatch; entries?: string; error?: string }) => {
      const slot = this.slots.find((candidate) => candidate.worker === worker);
      const task = slot?.tasks.get(message.id);
      if (slot === undefined || task === undefined) return;
      slot.tasks.delete(message.id);
      this.bodies.release(task.memory);
      if (message.batch !== undefined) task.resolve(withEntries(message.batch, message.entries));
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

/** A worker's answer with its parts' entries put back (they travel as one JSON text, see parse-worker-main.ts). */
function withEntries(batch: ParsedBatch, entries: string | undefined): ParsedBatch {
  if (!batch.ok || entries === undefined) return batch;
  const perPart = JSON.parse(entries) as PreparedEntry[][];
  return { ...batch, prepared: batch.prepared.map((part, index) => ({ ...part, entries: perPart[index]! })) };
}

/** The parser for server.parse_workers: 0 = in the request thread. */
export function createBatchParser(config: RelayerConfig, workers: number): Promise<BatchParser> {
  return workers === 0 ? Promise.resolve(new InlineBatchParser(config)) : WorkerBatchParser.start(config, workers);
}
