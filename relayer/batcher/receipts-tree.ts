/**
 * The receipts tree of a batch: OpenZeppelin StandardMerkleTree, leaves in batch order (no sorting), each leaf
 * `[rowIndex, keccak256(receipt id), keccak256(canonical receipt JSON), tokens, amountMilli]`. The row index binds
 * every receipt to the on-chain row that charged it; the receipt hash commits to everything LiteLLM reported.
 * Its root is `receiptsRoot` on-chain.
 */
import { StandardMerkleTree } from "@openzeppelin/merkle-tree";
import { keccak256, toUtf8Bytes } from "ethers";

import type { Receipt } from "../queue/index.js";

export const RECEIPT_LEAF_ENCODING = ["uint256", "bytes32", "bytes32", "uint64", "uint256"] as const;

export type ReceiptLeaf = [bigint, string, string, bigint, bigint];

/** JSON with keys sorted at every level: the same receipt always hashes the same. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, item: unknown) => {
    if (item === null || typeof item !== "object" || Array.isArray(item)) return item;
    return Object.fromEntries(Object.entries(item as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  });
}

export function receiptLeaf(rowIndex: number, receipt: Receipt): ReceiptLeaf {
  return [
    BigInt(rowIndex),
    keccak256(toUtf8Bytes(receipt.id)),
    keccak256(toUtf8Bytes(canonicalJson(receipt))),
    BigInt(receipt.tokens),
    BigInt(receipt.amountMilli),
  ];
}

export function buildReceiptsTree(leaves: ReceiptLeaf[]): StandardMerkleTree<ReceiptLeaf> {
  return StandardMerkleTree.of(leaves, [...RECEIPT_LEAF_ENCODING], { sortLeaves: false });
}
