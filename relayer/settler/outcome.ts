/**
 * What a settled batch's transaction says: the BatchSettled record and every RowRejected, decoded from the receipt
 * logs of the router. Rows not rejected were charged.
 */
import type { Interface } from "ethers";

export const REJECT_REASONS = [
  "None",
  "UnknownProvider",
  "ModelNotPriced",
  "ZeroAmount",
  "InvalidPayer",
  "OverPriceCap",
  "OverDailyCap",
  "OverModelBudget",
  "InsufficientFunds",
] as const;
export type RejectReasonName = (typeof REJECT_REASONS)[number];

export interface RpcLog {
  address: string;
  topics: string[];
  data: string;
  transactionHash: string;
  blockNumber: string;
  blockHash: string;
}

export interface SettlementOutcome {
  batchId: string;
  rowsRoot: string;
  receiptsRoot: string;
  acceptedRows: number;
  rejectedRows: number;
  escrowed: string;
  releaseAt: number;
  /** start (unix s) of the usage bucket of the batch's calls, as committed on-chain */
  callsFrom: number;
  dataCid: string;
  /** [row index, reason] for each rejected row, by index */
  rejected: [number, RejectReasonName][];
}

export function decodeOutcome(batchId: string, logs: readonly RpcLog[], router: string, contract: Interface): SettlementOutcome | null {
  let outcome: SettlementOutcome | null = null;
  const rejected: [number, RejectReasonName][] = [];
  for (const log of logs) {
    if (log.address.toLowerCase() !== router.toLowerCase()) continue;
    const parsed = contract.parseLog({ topics: log.topics, data: log.data });
    if (parsed === null || parsed.args.batchId !== batchId) continue;
    if (parsed.name === "RowRejected") {
      rejected.push([Number(parsed.args.index), REJECT_REASONS[Number(parsed.args.reason)] ?? "None"]);
    } else if (parsed.name === "BatchSettled") {
      outcome = {
        batchId,
        rowsRoot: parsed.args.rowsRoot as string,
        receiptsRoot: parsed.args.receiptsRoot as string,
        acceptedRows: Number(parsed.args.acceptedRows),
        rejectedRows: Number(parsed.args.rejectedRows),
        escrowed: (parsed.args.escrowed as bigint).toString(),
        releaseAt: Number(parsed.args.releaseAt),
        callsFrom: Number(parsed.args.callsFrom),
        dataCid: parsed.args.dataCid as string,
        rejected: [],
      };
    }
  }
  if (outcome === null) return null;
  outcome.rejected = rejected.sort((a, b) => a[0] - b[0]);
  return outcome;
}
