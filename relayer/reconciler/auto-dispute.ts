/**
 * Acting on a reconciliation:
 * - every interval the reconciler marks "overcharged" (all its settled rows billed beyond the provider's report and
 *   the tolerance, a dispute now refunding at least `min_refund`), with no open dispute and a row still holdable, is
 *   disputed for the payers whose keys the operator holds, naming every settled row of the interval;
 * - EVERY dispute open on the router (this relayer's and anyone else's) is followed as a keeper: the oracle's
 *   verification is started when none is in flight, retried after a failed or lost answer within its attempts and
 *   deadline, and a dispute past its governance deadline is settled as expired (the charge stands, bond returned).
 */
import { getAddress, type Signer } from "ethers";
import type { Logger } from "pino";

import { formatTokenAmount } from "../config/amount.js";
import { nextAction, type DisputeClient, type KeeperAction, type RequestedVerification } from "../disputes/dispute-client.js";
import { DisputeError } from "../disputes/errors.js";
import { DEFAULT_LOG_CHUNK_BLOCKS, getLogsChunked } from "../disputes/logs.js";
import type { IntervalKey } from "../disputes/interval.js";
import { FencedError } from "../settler/lease.js";
import type { DisputeLedger } from "./dispute-ledger.js";
import type { IntervalCheck } from "./report.js";

export interface ControlledPayer {
  readonly address: string;
  readonly signer: Signer;
  /** where the key came from, for logs ("keystore ./k.json", "$PAYER_KEY"); never the key */
  readonly source: string;
}

export interface AutoDisputerOptions {
  readonly client: DisputeClient;
  /** by checksummed address */
  readonly payers: ReadonlyMap<string, ControlledPayer>;
  /** signs keeper calls (requestVerification, settleExpiredDispute); undefined: disputes are only watched */
  readonly keeper?: Signer | undefined;
  /** approve the router for a bond the deposit does not cover (never more than the shortfall) */
  readonly approveBond: boolean;
  readonly ledger: DisputeLedger;
  readonly logChunkBlocks?: number | undefined;
  /**
   * whether this process still holds the chain's reconciler lease (the auto-disputer runs under it): asked before
   * every transaction, so a process that lost the lease opens no dispute (no second bond) and sends no keeper call
   */
  readonly active?: (() => boolean) | undefined;
  readonly logger?: Logger | undefined;
}

export type AutoDisputeOutcome =
  | {
      readonly key: IntervalKey;
      readonly result: "disputed";
      readonly disputeId: string;
      readonly txHash: string;
      /** the request sent when it opened (by the router's verifier) or right after; null: none yet */
      readonly requestId: string | null;
      readonly note?: string;
    }
  | { readonly key: IntervalKey; readonly result: "failed"; readonly code: string; readonly message: string };

export interface FollowUp {
  readonly disputeId: string;
  readonly state: "open" | "resolved" | "expired" | "none";
  readonly action: KeeperAction;
  /** what this pass sent */
  readonly requested?: RequestedVerification | undefined;
  readonly settledTx?: string | undefined;
  readonly note?: string | undefined;
}

export class AutoDisputer {
  constructor(private readonly options: AutoDisputerOptions) {}

  /** Intervals of `intervals` this disputer would dispute. */
  candidates(intervals: readonly IntervalCheck[]): IntervalCheck[] {
    return intervals.filter((i) => i.status === "overcharged" && i.openDispute === null && i.heldAmount > 0n && this.options.payers.has(getAddress(i.payer)));
  }

  async act(intervals: readonly IntervalCheck[]): Promise<AutoDisputeOutcome[]> {
    const out: AutoDisputeOutcome[] = [];
    for (const interval of this.candidates(intervals)) {
      this.leading();
      out.push(await this.dispute(interval));
    }
    return out;
  }

  /** Throws FencedError when this process no longer holds the reconciler lease (before every transaction). */
  private leading(): void {
    if (this.options.active !== undefined && !this.options.active()) throw new FencedError("the reconciler lease was lost: no dispute or keeper call is sent");
  }

  /**
   * Lists the disputes opened since the last pass (DisputeOpened logs from `sinceTime` on the first pass), then acts
   * on every open one as a keeper; closed ones leave the list with their outcome logged.
   */
  async followUp(sinceTime: number): Promise<FollowUp[]> {
    const { client, ledger, logger } = this.options;
    await this.discover(sinceTime);
    const out: FollowUp[] = [];
    for (const entry of await ledger.list()) {
      const id = entry.disputeId;
      const info = await client.chain.router.disputeInfo(id);
      const state = (["none", "open", "resolved", "expired"] as const)[Number(info.status)] ?? "none";
      if (state !== "open") {
        await ledger.remove(id);
        if (state !== "none") {
          const unit = client.chain.token.unit;
          logger?.info(
            { disputeId: id, payer: entry.payer, mine: entry.mine, state, overbilledTokens: info.overbilledTokens.toString(), refund: formatTokenAmount(info.refund, unit) },
            state === "expired" ? "dispute expired: the charge stood" : "dispute resolved",
          );
        }
        out.push({ disputeId: id, state, action: "none" });
        continue;
      }
      const status = {
        state,
        now: await client.now(),
        arbiterDeadline: Number(info.arbiterDeadline),
        governanceDeadline: Number(info.governanceDeadline),
        verification: client.chain.oracle === undefined ? undefined : await client.verificationState(id),
      } as const;
      const action = nextAction(status);
      if ((action !== "request" && action !== "settle-expired") || this.options.keeper === undefined) {
        out.push({ disputeId: id, state, action, note: action === "request" || action === "settle-expired" ? "no keeper key: watched only" : undefined });
        continue;
      }
      this.leading();
      try {
        if (action === "request") {
          const requested = await client.requestVerification(id, this.options.keeper);
          out.push({ disputeId: id, state, action, requested });
        } else {
          const settled = await client.settleExpired(id, this.options.keeper);
          out.push({ disputeId: id, state, action, settledTx: settled.txHash });
        }
      } catch (error) {
        if (!(error instanceof DisputeError)) throw error;
        logger?.warn({ disputeId: id, action, code: error.code, err: error.message }, "keeper action on a dispute refused");
        out.push({ disputeId: id, state, action, note: error.message });
      }
    }
    return out;
  }

  /** Adds to the ledger every dispute opened in the blocks not read yet. */
  private async discover(sinceTime: number): Promise<void> {
    const { client, ledger } = this.options;
    const router = client.chain.router;
    const head = await client.chain.provider.getBlockNumber();
    const last = await ledger.getNumber("disputeBlock");
    const fromBlock = last === null ? await client.clock.firstBlockAtOrAfter(sinceTime, 0, head) : last + 1;
    if (fromBlock <= head) {
      const logs = await getLogsChunked(
        client.chain.provider,
        { address: client.chain.routerAddress, topics: [router.interface.getEvent("DisputeOpened").topicHash] },
        fromBlock,
        head,
        this.options.logChunkBlocks ?? DEFAULT_LOG_CHUNK_BLOCKS,
      );
      const known = new Set((await ledger.list()).map((e) => e.disputeId));
      for (const log of logs) {
        const parsed = router.interface.parseLog({ topics: [...log.topics], data: log.data });
        if (parsed === null) continue;
        const disputeId = (parsed.args.getValue("disputeId") as string).toLowerCase();
        if (known.has(disputeId)) continue;
        await ledger.add({ disputeId, payer: getAddress(parsed.args.getValue("payer") as string), mine: false, openedTx: log.transactionHash, listedAt: Date.now() });
        known.add(disputeId);
      }
    }
    await ledger.setNumber("disputeBlock", head);
  }

  private async dispute(interval: IntervalCheck): Promise<AutoDisputeOutcome> {
    const { client, ledger, logger } = this.options;
    const key: IntervalKey = { payer: getAddress(interval.payer), provider: interval.providerId, model: interval.modelId, callsFrom: interval.callsFrom };
    const payer = this.options.payers.get(key.payer)!;
    const reason = `provider reports ${interval.reported} tokens, ${interval.billedTokens} billed over ${interval.rows.length} row(s)`;
    let opened;
    try {
      const prepared = await client.prepare(key, payer.address);
      opened = await client.open(prepared, payer.signer, { approveBond: this.options.approveBond, reason });
      await ledger.add({ disputeId: opened.disputeId, payer: payer.address, mine: true, openedTx: opened.txHash, listedAt: Date.now(), reason });
    } catch (error) {
      if (!(error instanceof DisputeError)) throw error;
      logger?.warn({ ...key, code: error.code, err: error.message }, "overcharged interval not disputed");
      return { key, result: "failed", code: error.code, message: error.message };
    }
    if (opened.requestId !== null) return { key, result: "disputed", disputeId: opened.disputeId, txHash: opened.txHash, requestId: opened.requestId };
    // No verifier on the router (or its request failed): ask the oracle now; the follow-up retries otherwise.
    try {
      const requested = await client.requestVerification(opened.disputeId, this.options.keeper ?? payer.signer);
      return { key, result: "disputed", disputeId: opened.disputeId, txHash: opened.txHash, requestId: requested.requestId };
    } catch (error) {
      if (!(error instanceof DisputeError)) throw error;
      logger?.warn({ disputeId: opened.disputeId, code: error.code, err: error.message }, "dispute opened, oracle not asked yet");
      return { key, result: "disputed", disputeId: opened.disputeId, txHash: opened.txHash, requestId: null, note: error.message };
    }
  }
}
