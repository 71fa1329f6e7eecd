/**
 * What the chain says about a key: the `AutoPayLLM` roles it holds, its gas balance, and its nonces (mined vs
 * pending: transactions the node holds that are not mined yet). Nothing secret is read or returned.
 */
import { Contract, type Provider } from "ethers";

import { ARBITER_ROLE, DEFAULT_ADMIN_ROLE, PAUSER_ROLE, RELAYER_ROLE } from "../chain/roles.js";

export const ROUTER_ROLES: ReadonlyArray<readonly [string, string]> = [
  ["DEFAULT_ADMIN_ROLE", DEFAULT_ADMIN_ROLE],
  ["RELAYER_ROLE", RELAYER_ROLE],
  ["ARBITER_ROLE", ARBITER_ROLE],
  ["PAUSER_ROLE", PAUSER_ROLE],
];

const ACCESS = ["function hasRole(bytes32 role, address account) view returns (bool)"];

export interface KeyStatus {
  readonly address: string;
  /** role names held on the router */
  readonly roles: string[];
  /** native balance for gas, in wei */
  readonly balance: bigint;
  /** transactions mined from this key */
  readonly latestNonce: number;
  /** transactions the node knows of, mined or pending */
  readonly pendingNonce: number;
}

export async function hasRole(provider: Provider, router: string, role: string, account: string): Promise<boolean> {
  return (await new Contract(router, ACCESS, provider).getFunction("hasRole")(role, account)) as boolean;
}

export async function keyStatus(provider: Provider, router: string, address: string): Promise<KeyStatus> {
  const [held, balance, latestNonce, pendingNonce] = await Promise.all([
    Promise.all(ROUTER_ROLES.map(([, role]) => hasRole(provider, router, role, address))),
    provider.getBalance(address),
    provider.getTransactionCount(address, "latest"),
    provider.getTransactionCount(address, "pending"),
  ]);
  return { address, roles: ROUTER_ROLES.filter((_, i) => held[i]).map(([name]) => name), balance, latestNonce, pendingNonce };
}

/** "12 mined, nothing pending" / "12 mined, 2 pending (nonces 12 to 13)". */
export function describeNonces(status: Pick<KeyStatus, "latestNonce" | "pendingNonce">): string {
  const pending = status.pendingNonce - status.latestNonce;
  if (pending <= 0) return `${status.latestNonce} mined, nothing pending`;
  return `${status.latestNonce} mined, ${pending} pending (nonce${pending === 1 ? ` ${status.latestNonce}` : `s ${status.latestNonce} to ${status.pendingNonce - 1}`})`;
}
