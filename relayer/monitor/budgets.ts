/**
 * What may still be spent today (UTC days, as the contract counts them), read from the router's views:
 *   models  each registered model's governed daily budget and what was charged against it today
 *           (`modelInfo`; a budget of 0 means none is set, so that model is not limited)
 *   payer   one payer's room today: the least of its own cap left (`accountOf`: dailyCap - spentToday, no cap when
 *           0) and the funds the router can reach (deposit + what the allowance can pull from the wallet:
 *           min(allowance, balance))
 */
import type { AutoPayLLM } from "../../typechain-types/index.js";

export interface ModelBudget {
  readonly id: number;
  readonly name: string;
  /** units per 1k tokens; 0: not billable */
  readonly maxPricePer1k: bigint;
  /** 0: no budget */
  readonly dailyLimit: bigint;
  readonly spentToday: bigint;
  /** dailyLimit - spentToday (never below 0), or null when the model has no budget */
  readonly left: bigint | null;
}

export interface PayerBudget {
  readonly user: string;
  readonly deposit: bigint;
  readonly spentToday: bigint;
  /** 0: no cap */
  readonly dailyCap: bigint;
  readonly allowance: bigint;
  readonly walletBalance: bigint;
  /** null when no cap is set */
  readonly capLeft: bigint | null;
  /** deposit + min(allowance, walletBalance) */
  readonly funds: bigint;
  /** min(capLeft, funds) */
  readonly remaining: bigint;
}

export interface TokenReader {
  balanceOf(account: string): Promise<bigint>;
  allowance(owner: string, spender: string): Promise<bigint>;
}

export async function readModelBudgets(router: AutoPayLLM): Promise<ModelBudget[]> {
  const count = Number(await router.modelCount());
  return Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const id = i + 1;
      const [name, maxPricePer1k, dailyLimit, spentToday] = await router.modelInfo(id);
      return { id, name, maxPricePer1k, dailyLimit, spentToday, left: dailyLimit === 0n ? null : dailyLimit > spentToday ? dailyLimit - spentToday : 0n };
    }),
  );
}

export async function readPayerBudget(router: AutoPayLLM, routerAddress: string, token: TokenReader, user: string): Promise<PayerBudget> {
  const [[deposit, spentToday, dailyCap], allowance, walletBalance] = await Promise.all([
    router.accountOf(user),
    token.allowance(user, routerAddress),
    token.balanceOf(user),
  ]);
  const capLeft = dailyCap === 0n ? null : dailyCap > spentToday ? dailyCap - spentToday : 0n;
  const funds = deposit + (allowance < walletBalance ? allowance : walletBalance);
  const remaining = capLeft !== null && capLeft < funds ? capLeft : funds;
  return { user, deposit, spentToday, dailyCap, allowance, walletBalance, capLeft, funds, remaining };
}
