/**
 * The release stage of one chain: every settled batch whose dispute window has closed is released to its providers'
 * credits (AutoPayLLM `release`), without a scan of the whole chain and without racing the settler for nonces.
 *
 * - Finding batches: the settler hands each final batch over (`settled`, with its window's close from the
 *   BatchSettled log) into the schedule (release-schedule.ts, a Redis sorted set by close time). Batches settled
 *   while no relayer ran (or by another relayer, or by hand) are found by reading BatchSettled logs from a cursor
 *   kept in Redis, forward only, `logChunkBlocks` at a time; the first start reads `lookbackBlocks` back.
 * - Sending: the releases are side calls of the chain's settler (settler/side-calls.ts): signed with its key, from
 *   its ledger's nonce sequence, with its fee bumps, by whichever host holds the chain's settler lease. Only that
 *   host looks for work (`active`), so several hosts running the stage send each release once.
 * - Idempotent: a batch released by someone else first (another host, `agentgpt provider release`, anyone) is a
 *   no-op: the simulation says AutoPayLLMBatchNotEscrowed and the batch leaves the schedule, logged at info. A batch
 *   with rows held by a dispute is released like any other: the contract credits the rest and keeps the held rows
 *   in escrow until the dispute is resolved. A window that closes later than scheduled (an L2 sequencer outage)
 *   moves the batch; a paused router leaves it scheduled.
 */
import { Interface } from "ethers";
import type { Logger } from "pino";

import { revertOf } from "../settler/rpc-errors.js";
import type { RpcLog, SettlementOutcome } from "../settler/outcome.js";
import type { RpcPool } from "../settler/rpc-pool.js";
import type { SideCall, SideCalls, SideOutcome } from "../settler/side-calls.js";
import { AutoPayLLM__factory } from "../../typechain-types/factories/AutoPayLLM__factory.js";
import type { PayoutEvents } from "./metrics.js";
import type { ReleaseSchedule } from "./release-schedule.js";

export interface ReleaseStageOptions {
  readonly schedule: ReleaseSchedule;
  readonly rpc: RpcPool;
  readonly router: string;
  /** ms between looks for due batches and new BatchSettled logs */
  readonly intervalMs: number;
  /** first start (no cursor yet): read BatchSettled logs from this many blocks back */
  readonly lookbackBlocks: number;
  /** blocks per eth_getLogs */
  readonly logChunkBlocks: number;
  /** chunks read per look at most (the rest at the next look; default 20) */
  readonly maxChunksPerTick?: number;
  /** true while this host sends for the chain (it holds the settler's lease) */
  readonly active: () => boolean;
  /** called when due batches are found (wakes the settler) */
  readonly onReady?: () => void;
  readonly logger?: Logger | undefined;
  /** told how each release ended (relayer/payout/metrics.ts) */
  readonly events?: PayoutEvents | undefined;
}

/** `disputeClosesAt` while an L2 sequencer outage keeps the window from closing. */
const NEVER = (1n << 256n) - 1n;
/** looked at again this long after the chain said "not yet" without a time (seconds) */
const RETRY_SECONDS = 60;

export class ReleaseStage implements SideCalls {
  private readonly contract: Interface = AutoPayLLM__factory.createInterface();
  private readonly settledTopic: string;
  private ready: string[] = [];
  private timer: NodeJS.Timeout | null = null;
  private ticking: Promise<void> | null = null;
  private pausedLogged = false;
  private stopped = true;

  constructor(private readonly options: ReleaseStageOptions) {
    this.settledTopic = this.contract.getEvent("BatchSettled")!.topicHash;
  }

  get schedule(): ReleaseSchedule {
    return this.options.schedule;
  }

  /** Looks for due batches every `intervalMs` until stop(). */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    const loop = () => {
      if (this.stopped) return;
      this.ticking = this.tick()
        .catch((error: unknown) => this.options.logger?.warn({ err: errorInfo(error) }, "release stage: looking for due batches failed; retrying"))
        .finally(() => {
          this.ticking = null;
          if (!this.stopped) this.timer = setTimeout(loop, this.options.intervalMs);
        });
    };
    loop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    await this.ticking;
  }

  /** The settler finalized a batch: schedule its release at its window's close. */
  async settled(record: { batchId: string; outcome: SettlementOutcome | null }): Promise<void> {
    if (record.outcome === null || BigInt(record.outcome.escrowed) === 0n) return; // nothing escrowed: nothing to release
    await this.options.schedule.add(record.batchId, record.outcome.releaseAt);
  }

  /**
   * One look, on the host that sends: reads new BatchSettled logs into the schedule, then checks the batches due
   * by the chain's clock and keeps the releasable ones for the settler to send. Public for tests and tools.
   */
  async tick(): Promise<void> {
    if (!this.options.active()) {
      this.ready = [];
      return;
    }
    await this.scanLogs();
    const head = await this.rpc<{ timestamp: string }>("eth_getBlockByNumber", ["latest", false]);
    const now = Number(BigInt(head.timestamp));
    const ready: string[] = [];
    for (const batchId of await this.options.schedule.due(now, 64)) {
      const info = await this.batchInfo(batchId);
      if (info.status !== 1) {
        await this.options.schedule.remove(batchId); // released (by anyone), or unknown (settled in a block reorged away)
        if (info.status === 2) this.options.events?.release("elsewhere");
        continue;
      }
      const closes = await this.closesAt(batchId);
      if (closes === NEVER || closes > BigInt(now)) {
        await this.options.schedule.reschedule(batchId, closes === NEVER ? now + RETRY_SECONDS : Number(closes));
        continue;
      }
      ready.push(batchId);
    }
    this.ready = ready;
    if (ready.length > 0) this.options.onReady?.();
  }

  /** SideCalls: the next due batch, simulated as `from`; null when none (or the router is paused). */
  async next(from: string): Promise<SideCall | null> {
    while (this.ready.length > 0) {
      const batchId = this.ready[0]!;
      const data = this.contract.encodeFunctionData("release", [batchId]);
      let estimate: bigint;
      try {
        estimate = BigInt(await this.rpc<string>("eth_estimateGas", [{ from, to: this.options.router, data }]));
      } catch (error) {
        const revert = revertOf(error, this.contract);
        if (revert?.name === "EnforcedPause") {
          if (!this.pausedLogged) this.options.logger?.warn({ batchId }, "the router is paused: releases wait until it is unpaused");
          this.pausedLogged = true;
          return null;
        }
        this.ready.shift();
        if (revert?.name === "AutoPayLLMBatchNotEscrowed") {
          this.options.logger?.info({ batchId }, "batch already released (by someone else): nothing to send");
          await this.options.schedule.remove(batchId);
          this.options.events?.release("elsewhere");
        } else if (revert?.name === "AutoPayLLMWindowOpen") {
          await this.options.schedule.reschedule(batchId, Number(revert.args[1] as bigint));
        } else {
          this.options.logger?.warn({ batchId, reason: revert === null ? (error as Error).message : revert.name }, "batch cannot be released now; retried later");
        }
        continue;
      }
      this.ready.shift();
      this.pausedLogged = false;
      return { id: batchId, kind: "release", data, gasLimit: (estimate * 125n) / 100n };
    }
    return null;
  }

  /** SideCalls: a release was mined (or its nonce taken). Only a batch the chain shows released leaves the schedule. */
  async done(call: { readonly id: string }, outcome: SideOutcome | null): Promise<void> {
    if (outcome?.feeWei !== undefined) this.options.events?.feePaid(outcome.feeWei);
    this.ready = this.ready.filter((batchId) => batchId !== call.id.toLowerCase()); // found due again while it was in flight
    if (outcome !== null && outcome.ok) {
      const amount = this.releasedAmount(call.id, outcome.logs);
      this.options.logger?.info({ batchId: call.id, hash: outcome.hash, amount: amount?.toString() ?? null }, "batch released to its providers' credits");
      await this.options.schedule.remove(call.id);
      this.options.events?.release("released");
      return;
    }
    const info = await this.batchInfo(call.id);
    if (info.status === 2) {
      this.options.logger?.info({ batchId: call.id, hash: outcome?.hash ?? null }, "batch was released by someone else first");
      await this.options.schedule.remove(call.id);
      this.options.events?.release("elsewhere");
    } else {
      this.options.logger?.warn({ batchId: call.id, hash: outcome?.hash ?? null }, "release did not go through; it is tried again");
      this.options.events?.release("failed");
    }
  }

  private releasedAmount(batchId: string, logs: readonly RpcLog[]): bigint | null {
    for (const log of logs) {
      if (log.address.toLowerCase() !== this.options.router.toLowerCase()) continue;
      const parsed = this.contract.parseLog({ topics: log.topics, data: log.data });
      if (parsed?.name === "BatchReleased" && String(parsed.args[0]).toLowerCase() === batchId.toLowerCase()) return parsed.args[1] as bigint;
    }
    return null;
  }

  /** Reads BatchSettled logs from the cursor towards the head, a bounded number of chunks per look. */
  private async scanLogs(): Promise<void> {
    const { schedule, logChunkBlocks } = this.options;
    const head = Number(BigInt(await this.rpc<string>("eth_blockNumber", [])));
    let from = (await schedule.cursor()) ?? Math.max(0, head - this.options.lookbackBlocks);
    const maxChunks = this.options.maxChunksPerTick ?? 20;
    for (let chunk = 0; chunk < maxChunks && from <= head; chunk++) {
      const to = Math.min(head, from + logChunkBlocks - 1);
      const logs = await this.rpc<RpcLog[]>("eth_getLogs", [
        { address: this.options.router, topics: [this.settledTopic], fromBlock: `0x${from.toString(16)}`, toBlock: `0x${to.toString(16)}` },
      ]);
      for (const log of logs) {
        const parsed = this.contract.parseLog({ topics: log.topics, data: log.data });
        if (parsed?.name !== "BatchSettled" || (parsed.args.getValue("escrowed") as bigint) === 0n) continue;
        await schedule.add(parsed.args.getValue("batchId") as string, Number(parsed.args.getValue("releaseAt") as bigint));
      }
      from = to + 1;
      await schedule.advanceCursor(from);
    }
  }

  private async batchInfo(batchId: string): Promise<{ status: number }> {
    const result = await this.rpc<string>("eth_call", [{ to: this.options.router, data: this.contract.encodeFunctionData("batchInfo", [batchId]) }, "latest"]);
    const [info] = this.contract.decodeFunctionResult("batchInfo", result);
    return { status: Number((info as { status: bigint }).status) };
  }

  private async closesAt(batchId: string): Promise<bigint> {
    const result = await this.rpc<string>("eth_call", [{ to: this.options.router, data: this.contract.encodeFunctionData("disputeClosesAt", [batchId]) }, "latest"]);
    return this.contract.decodeFunctionResult("disputeClosesAt", result)[0] as bigint;
  }

  private rpc<T>(method: string, params: unknown[]): Promise<T> {
    return this.options.rpc.request<T>(method, params);
  }
}

function errorInfo(error: unknown): { name: string; message: string } {
  return error instanceof Error ? { name: error.name, message: error.message } : { name: "Error", message: String(error) };
}
