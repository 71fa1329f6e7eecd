/**
 * The rows tree of a batch, built exactly as `AutoPayLLM` builds it on-chain (contracts/libraries/ChargeMerkle.sol):
 * OpenZeppelin's StandardMerkleTree over the accepted rows, in submission order (no leaf sorting), each leaf
 * `[index, user, provider, model, tokens, amount]` where `index` is the row's position in the submitted batch.
 */
import { StandardMerkleTree } from "@openzeppelin/merkle-tree";

/** One aggregated row of a batch (Solidity `IAutoPayLLM.Charge`). */
export interface Charge {
  user: string;
  provider: number;
  model: number;
  tokens: bigint;
  amount: bigint;
}

export const ROW_LEAF_ENCODING = ["uint256", "address", "uint32", "uint32", "uint64", "uint128"] as const;

export type RowLeaf = [bigint, string, number, number, bigint, bigint];

export function rowLeaf(index: number, charge: Charge): RowLeaf {
  return [BigInt(index), charge.user, charge.provider, charge.model, charge.tokens, charge.amount];
}

export interface RowsTree {
  /** Zero hash when no row was accepted (the contract stores bytes32(0)). */
  root: string;
  /** Merkle proof for the row submitted at position `index`; throws for a row that is not in the tree. */
  proof(index: number): string[];
}

const ZERO_ROOT = `0x${"00".repeat(32)}`;

/**
 * @param charges every row as submitted
 * @param rejected positions the contract rejected (from `RowRejected` events); they are left out of the tree
 */
export function buildRowsTree(charges: readonly Charge[], rejected: ReadonlySet<number> = new Set()): RowsTree {
  const leaves: RowLeaf[] = [];
  charges.forEach((charge, index) => {
    if (!rejected.has(index)) leaves.push(rowLeaf(index, charge));
  });
  if (leaves.length === 0) {
    return {
      root: ZERO_ROOT,
      proof: (index) => {
        throw new Error(`row ${index} is not in the rows tree: no row of this batch was accepted`);
      },
    };
  }
  const tree = StandardMerkleTree.of(leaves, [...ROW_LEAF_ENCODING], { sortLeaves: false });
  const positionOf = new Map<number, number>();
  leaves.forEach((leaf, position) => positionOf.set(Number(leaf[0]), position));
  return {
    root: tree.root,
    proof: (index) => {
      const position = positionOf.get(index);
      if (position === undefined) throw new Error(`row ${index} is not in the rows tree (rejected or out of range)`);
      return tree.getProof(position);
    },
  };
}
