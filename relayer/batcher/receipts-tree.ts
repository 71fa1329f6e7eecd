/**
 * The receipts tree of a batch: bit-for-bit OpenZeppelin's `StandardMerkleTree.of(leaves, RECEIPT_LEAF_ENCODING,
 * { sortLeaves: false })`, each leaf `[rowIndex, keccak256(receipt id), keccak256(canonical receipt JSON), tokens,
 * amountMilli]`. The row index binds every receipt to the on-chain row that charged it; the receipt hash commits to
 * everything LiteLLM reported. Its root is `receiptsRoot` on-chain.
 *
 * Built here directly (static ABI words, keccak from @noble/hashes, the library's heap layout and sorted-pair node
 * hash) because the library's generic encoder takes about a second for a few thousand leaves; a test checks that
 * both give the same root and proofs.
 */
import { keccak_256 } from "@noble/hashes/sha3.js";

import { Receipt } from "../queue/index.js";

export const RECEIPT_LEAF_ENCODING = ["uint256", "bytes32", "bytes32", "uint64", "uint256"] as const;

export type ReceiptLeaf = [bigint, string, string, bigint, bigint];

/** Receipt keys in sorted order: with it, JSON.stringify writes a receipt (a flat object) canonically. */
const RECEIPT_KEYS = Object.keys(Receipt.shape).sort();
const utf8 = new TextEncoder();

/** The receipt as JSON with its keys sorted: the same receipt always hashes the same. */
export function canonicalJson(receipt: Receipt): string {
  return JSON.stringify(receipt, RECEIPT_KEYS);
}

export function receiptLeaf(rowIndex: number, receipt: Receipt): ReceiptLeaf {
  return [
    BigInt(rowIndex),
    toHex(keccak_256(utf8.encode(receipt.id))),
    toHex(keccak_256(utf8.encode(canonicalJson(receipt)))),
    BigInt(receipt.tokens),
    BigInt(receipt.amountMilli),
  ];
}

/** standardLeafHash(RECEIPT_LEAF_ENCODING, leaf): keccak256(keccak256(abi.encode(...))) of five static words. */
export function receiptLeafHash(leaf: ReceiptLeaf): Uint8Array {
  const words = new Uint8Array(160);
  writeWord(words, 0, leaf[0]);
  words.set(fromHex(leaf[1]), 32);
  words.set(fromHex(leaf[2]), 64);
  writeWord(words, 96, leaf[3]);
  writeWord(words, 128, leaf[4]);
  return keccak_256(keccak_256(words));
}

export interface ReceiptsTree {
  root: string;
  /** proof of the leaf at `position` (batch order) */
  proof(position: number): string[];
}

/** makeMerkleTree of @openzeppelin/merkle-tree: 2n-1 nodes, leaf i at 2n-2-i, node k = hash(sorted(2k+1, 2k+2)). */
export function buildReceiptsTree(leaves: readonly ReceiptLeaf[]): ReceiptsTree {
  const n = leaves.length;
  if (n === 0) throw new Error("a receipts tree needs at least one leaf");
  const tree: Uint8Array[] = new Array(2 * n - 1);
  leaves.forEach((leaf, i) => (tree[tree.length - 1 - i] = receiptLeafHash(leaf)));
  const pair = new Uint8Array(64);
  for (let k = tree.length - 1 - n; k >= 0; k--) {
    const a = tree[2 * k + 1]!;
    const b = tree[2 * k + 2]!;
    const [low, high] = compare(a, b) <= 0 ? [a, b] : [b, a];
    pair.set(low, 0);
    pair.set(high, 32);
    tree[k] = keccak_256(pair);
  }
  return {
    root: toHex(tree[0]!),
    proof(position) {
      if (!Number.isInteger(position) || position < 0 || position >= n) throw new Error(`no receipt at position ${position}`);
      const path: string[] = [];
      for (let index = tree.length - 1 - position; index > 0; index = Math.floor((index - 1) / 2)) {
        path.push(toHex(tree[index % 2 === 1 ? index + 1 : index - 1]!));
      }
      return path;
    },
  };
}

function writeWord(target: Uint8Array, offset: number, value: bigint): void {
  let v = value;
  for (let i = 31; i >= 0 && v > 0n; i--) {
    target[offset + i] = Number(v & 0xffn);
    v >>= 8n;
  }
}

function compare(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < 32; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return 0;
}

function toHex(bytes: Uint8Array): string {
  return `0x${Buffer.from(bytes).toString("hex")}`;
}

function fromHex(hex: string): Uint8Array {
  return Buffer.from(hex.slice(2), "hex");
}
