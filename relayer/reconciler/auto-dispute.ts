/**
 * Acting on a reconciliation for the payers the operator holds keys of: every row the reconciler marks
 * "overcharged" (the provider's own report is short beyond the tolerance and the oracle's refund would be at least
 * `min_refund`), still undisputed and inside its window, is disputed with its proof from the archive, and the
 * UsageOracle is asked to verify it. Then each dispute is followed until it is resolved: a failed or lost oracle
 * answer is asked again (within the oracle's attempts and deadline). Other payers' rows are only reported.
 */
import { getAddress, type Signer } from "ethers";
import type { Logger } from "pino";

import { formatTokenAmount } from "../config/amount.js";
import type { DisputeClient, DisputeStatus, DisputeTarget, RequestedVerification } from "../disputes/dispute-client.js";
import { DisputeError } from "../disputes/errors.js";
import type { DisputeLedger } from "./dispute-ledger.js";
import type { RowCheck } from "./report.js";

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
  /** an account with the oracle's REQUESTER_ROLE; default: each payer asks for its own rows */
  readonly requester?: Signer | undefined;
  /** approve the router for a bond the deposit does not cover (never more than the shortfall) */
  readonly approveBond: boolean;
  readonly ledger: DisputeLedger;
  readonly logger?: Logger | undefined;
}

export type AutoDisputeOutcome =
  | { readonly target: DisputeTarget; readonly result: "disputed"; readonly txHash: string; readonly verification: RequestedVerification | null; readonly note?: string }
  | { readonly target: DisputeTarget; readonly result: "failed"; readonly code: string; readonly message: string };

export interface FollowUp {
  readonly target: DisputeTarget;
  readonly status: DisputeStatus;
  /** a new oracle request sent by this follow-up */
  readonly requested?: RequestedVerification | undefined;
  readonly note?: string | undefined;
}

export class AutoDisputer {
  constructor(private readonly options: AutoDisputerOptions) {}

  /** Rows of `rows` this disputer would act on. */
  candidates(rows: readonly RowCheck[]): RowCheck[] {
    return rows.filter((r) => r.status === "overcharged" && r.dispute === "none" && r.disputable && this.options.payers.has(getAddress(r.payer)));
  }

  async act(rows: readonly RowCheck[]): Promise<AutoDisputeOutcome[]> {
    const out: AutoDisputeOutcome[] = [];
    for (const row of this.candidates(rows)) out.push(await this.dispute(row));
    return out;
  }

  /** Looks at every dispute this relayer opened: logs resolutions, asks the oracle again where it may. */
  async followUp(): Promise<FollowUp[]> {
    const { client, ledger, logger } = this.options;
    const out: FollowUp[] = [];
    for (const entry of await ledger.list()) {
      const target = { batchId: entry.batchId, index: entry.index };
      const status = await client.status(target);
      if (status.state !== "open") {
        await ledger.remove(entry.batchId, entry.index);
        if (status.resolution !== undefined) {
          const unit = client.chain.token.unit;
          logger?.info(
            {
              ...target,
              payer: entry.payer,
              refund: formatTokenAmount(status.resolution.refund, unit),
              toProvider: formatTokenAmount(status.resolution.toProvider, unit),
              bondReturned: status.resolution.bondReturned,
              tx: status.resolution.txHash,
            },
            "dispute resolved",
          );
        }
        out.push({ target, status });
        continue;
      }
      const v = status.verification;
      const mayAsk = v !== undefined && status.now < status.arbiterDeadline && v.attempts < v.maxAttempts && (v.pending === null || status.now >= v.retryAt);
      if (!mayAsk) {
        out.push({ target, status });
        continue;
      }
      try {
        const proven = await client.prove(target);
        const requested = await client.requestVerification(target, proven, this.requesterFor(entry.payer));
        out.push({ target, status, requested });
      } catch (error) {
        if (!(error instanceof DisputeError)) throw error;
        logger?.warn({ ...target, code: error.code, err: error.message }, "could not ask the oracle again");
        out.push({ target, status, note: error.message });
      }
    }
    return out;
  }

  private async dispute(row: RowCheck): Promise<AutoDisputeOutcome> {
    const { client, ledger, logger } = this.options;
    const target = { batchId: row.batchId, index: row.index };
    const payer = this.options.payers.get(getAddress(row.payer))!;
    const reason = `provider reports ${row.reported} tokens, ${row.tokens} billed`;
    let txHash: string;
    let proven;
    try {
      const prepared = await client.prepare(target, payer.address);
      proven = prepared.proven;
      const opened = await client.open(prepared, payer.signer, { approveBond: this.options.approveBond, reason });
      txHash = opened.txHash;
      await ledger.add({ ...target, payer: payer.address, openedTx: txHash, openedAt: Date.now(), reason });
    } catch (error) {
      if (!(error instanceof DisputeError)) throw error;
      logger?.warn({ ...target, payer: payer.address, code: error.code, err: error.message }, "overcharged row not disputed");
      return { target, result: "failed", code: error.code, message: error.message };
    }
    try {
      const verification = await client.requestVerification(target, proven, this.requesterFor(payer.address));
      return { target, result: "disputed", txHash, verification };
    } catch (error) {
      if (!(error instanceof DisputeError)) throw error;
      logger?.warn({ ...target, code: error.code, err: error.message }, "dispute opened, oracle not asked yet");
      return { target, result: "disputed", txHash, verification: null, note: error.message };
    }
  }

  private requesterFor(payer: string): Signer {
    return this.options.requester ?? this.options.payers.get(getAddress(payer))?.signer ?? missing(payer);
  }
}

function missing(payer: string): never {
  throw new DisputeError("NOT_PAYER", `no key for payer ${payer} and no requester key: cannot ask the oracle`);
}
