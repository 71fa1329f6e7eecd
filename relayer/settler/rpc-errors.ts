/**
 * The one place where a node's error answer becomes a decision. Standard cases use ethers' own classifier
 * (`JsonRpcProvider.getRpcError`, which knows the strings of geth, Hardhat/EDR, Nitro and Bor) and are then
 * branched on by ethers error code; "already known" has no ethers code, so it is recognised here, once.
 */
import { JsonRpcProvider, isError, type Interface } from "ethers";

import { JsonRpcError } from "./json-rpc.js";

export type SendFailure =
  /** the nonce was already used: by this transaction (mined), a replacement, or another sender */
  | "nonce-too-low"
  /** the node already has this exact transaction: it was broadcast */
  | "already-known"
  /** a transaction with this nonce is pending with fees too close to these */
  | "replacement-underpriced"
  /** the signer cannot pay for gas */
  | "insufficient-funds"
  | "other";

// Used only for its error classifier; it never opens a connection.
const classifier = new JsonRpcProvider("http://127.0.0.1:1", 1, { staticNetwork: true });

function ethersError(error: JsonRpcError, params: unknown[]): Error {
  return classifier.getRpcError(
    { method: error.method, params, id: 0, jsonrpc: "2.0" },
    { id: 0, error: { code: error.code, message: error.message, data: error.data } },
  );
}

export function classifySendError(error: unknown, rawTransaction: string): SendFailure {
  if (!(error instanceof JsonRpcError)) return "other";
  if (/already known|known transaction|already imported/i.test(error.message)) return "already-known";
  const classified = ethersError(error, [rawTransaction]);
  if (isError(classified, "NONCE_EXPIRED")) return "nonce-too-low";
  if (isError(classified, "REPLACEMENT_UNDERPRICED")) return "replacement-underpriced";
  if (isError(classified, "INSUFFICIENT_FUNDS")) return "insufficient-funds";
  return "other";
}

/** A reverted eth_call/eth_estimateGas: the custom error it reverted with, decoded with `contract`, if any. */
export function revertOf(error: unknown, contract: Interface): { name: string; args: unknown[] } | null {
  if (!(error instanceof JsonRpcError)) return null;
  const classified = ethersError(error, [{}]);
  if (!isError(classified, "CALL_EXCEPTION") || classified.data == null) return null;
  try {
    const parsed = contract.parseError(classified.data);
    return parsed === null ? null : { name: parsed.name, args: [...parsed.args] };
  } catch {
    return null;
  }
}
