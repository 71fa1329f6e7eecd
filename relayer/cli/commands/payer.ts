/**
 * `agentgpt payer ...`: a payer funds and limits its own account of the settlement router, with amounts in token
 * units ("500 AGPT"). Logic lives in relayer/payer; this file parses options and prints.
 *
 *   agentgpt payer balance [--address 0x...]
 *   agentgpt payer deposit --amount "500 AGPT" [--no-permit]
 *   agentgpt payer withdraw --amount "100 AGPT" | --all
 *   agentgpt payer approve --amount "1000 AGPT"
 *   agentgpt payer permit --amount "1000 AGPT" [--deadline 1h]
 *   agentgpt payer cap --daily "50 AGPT" | --none
 *   agentgpt payer refill --threshold "20 AGPT" --amount "100 AGPT" | --off
 */
import type { Command } from "commander";
import { getAddress } from "ethers";

import { AmountError, formatTokenAmount, parseTokenAmount } from "../../config/amount.js";
import { parseDurationMs } from "../../config/units.js";
import { PayerClient, PayerError, type PayerStatus } from "../../payer/index.js";
import { openSession, print, runCommand, withChainOptions, withConfirmations, type ChainOptions } from "../chain-session.js";
import { UserError } from "../errors.js";

const run = <A extends unknown[]>(body: (...args: A) => Promise<void>) => runCommand([PayerError, AmountError], body);

async function client(options: ChainOptions) {
  const session = await openSession(options, true);
  const signer = session.signer!;
  print([`${session.chain.network.name} (chain ${session.chain.chainId}) via ${session.chain.rpcLabel}; payer ${signer.address} (${signer.source})`]);
  return new PayerClient(session.suite, signer.signer, signer.address, session.confirmations);
}

function amount(option: string, text: string, payer: PayerClient): bigint {
  try {
    return parseTokenAmount(text, payer.unit);
  } catch (error) {
    throw new UserError(`${option}: ${(error as Error).message}`, 2, { cause: error });
  }
}

function describe(status: PayerStatus, payer: PayerClient): string[] {
  const f = (value: bigint) => formatTokenAmount(value, payer.unit);
  return [
    `Payer ${status.account}`,
    `  deposit          ${f(status.deposit)}  (charged first; withdraw with \`agentgpt payer withdraw\`)`,
    `  wallet           ${f(status.wallet)}`,
    `  allowance        ${f(status.allowance)}  (what the router may pull for refills and bonds)`,
    `  spent today      ${f(status.spentToday)}  (UTC)`,
    `  daily cap        ${status.dailyCap === 0n ? "none" : f(status.dailyCap)}`,
    `  auto-refill      ${status.refillThreshold === 0n && status.refillAmount === 0n ? "off (shortfalls are still pulled from the allowance)" : `below ${f(status.refillThreshold)}, pull at least ${f(status.refillAmount)}`}`,
  ];
}

export function register(program: Command): void {
  const payer = program.command("payer").description("fund and limit a payer's account: deposit, withdraw, allowance, daily cap, auto-refill");

  withConfirmations(withChainOptions(payer.command("balance")))
    .description("show a payer's deposit, wallet, allowance, spend today, cap and auto-refill (no signer needed with --address)")
    .option("--address <address>", "the payer to show, 0x... (default: the signer)")
    .action(
      run(async (options: ChainOptions & { address?: string }) => {
        const session = await openSession(options, options.address === undefined);
        let account: string;
        try {
          account = getAddress(options.address ?? session.signer!.address);
        } catch (error) {
          throw new UserError(`--address "${options.address}": not an address (0x and 40 hex digits): ${(error as Error).message}`);
        }
        const view = new PayerClient(session.suite, session.signer?.signer ?? null, account, session.confirmations);
        print(describe(await view.status(), view));
      }),
    );

  withConfirmations(withChainOptions(payer.command("deposit")))
    .description("move tokens from the wallet into the deposit (with an EIP-2612 permit when the allowance is short)")
    .requiredOption("--amount <amount>", 'e.g. "500 AGPT"')
    .option("--no-permit", "never sign a permit: refuse when the allowance is short")
    .action(
      run(async (options: ChainOptions & { amount: string; permit: boolean }) => {
        const p = await client(options);
        const value = amount("--amount", options.amount, p);
        const { hash, block, permit } = await p.deposit(value, options.permit);
        print([`Deposited ${formatTokenAmount(value, p.unit)}${permit ? " with a permit" : ""} in ${hash} (block ${block}).`, ...describe(await p.status(), p)]);
      }),
    );

  withConfirmations(withChainOptions(payer.command("withdraw")))
    .description("take un-escrowed deposit back to the wallet")
    .option("--amount <amount>", 'e.g. "100 AGPT"')
    .option("--all", "the whole deposit")
    .action(
      run(async (options: ChainOptions & { amount?: string; all?: boolean }) => {
        if ((options.amount === undefined) === (options.all !== true)) throw new UserError("give either --amount <amount> or --all");
        const p = await client(options);
        const { hash, block, amount: taken } = await p.withdraw(options.all === true ? "all" : amount("--amount", options.amount!, p));
        print([`Withdrew ${formatTokenAmount(taken, p.unit)} in ${hash} (block ${block}).`, ...describe(await p.status(), p)]);
      }),
    );

  withConfirmations(withChainOptions(payer.command("approve")))
    .description("let the router pull up to this much from the wallet (auto-refills, and bonds when the deposit is short)")
    .requiredOption("--amount <amount>", 'e.g. "1000 AGPT" ("0 AGPT" revokes)')
    .action(
      run(async (options: ChainOptions & { amount: string }) => {
        const p = await client(options);
        const value = amount("--amount", options.amount, p);
        const { hash, block } = await p.approve(value);
        print([`Allowance set to ${formatTokenAmount(value, p.unit)} in ${hash} (block ${block}).`]);
      }),
    );

  withConfirmations(withChainOptions(payer.command("permit")))
    .description("set the router's allowance with a signed EIP-2612 permit instead of an approve transaction")
    .requiredOption("--amount <amount>", 'e.g. "1000 AGPT" ("0 AGPT" revokes)')
    .option("--deadline <duration>", 'how long the signature stays valid, in chain time, e.g. "1h" or "600s"', "1h")
    .action(
      run(async (options: ChainOptions & { amount: string; deadline: string }) => {
        let validFor: number;
        try {
          validFor = parseDurationMs(options.deadline) / 1000;
        } catch (error) {
          throw new UserError(`--deadline: ${(error as Error).message}`, 2, { cause: error });
        }
        if (!Number.isInteger(validFor) || validFor < 1) throw new UserError(`--deadline "${options.deadline}": give whole seconds, at least 1s`);
        const p = await client(options);
        const value = amount("--amount", options.amount, p);
        const { hash, block, deadline } = await p.permit(value, validFor);
        print([
          `Allowance set to ${formatTokenAmount(value, p.unit)} by permit (signed until ${new Date(Number(deadline) * 1000).toISOString()}) in ${hash} (block ${block}).`,
        ]);
      }),
    );

  withConfirmations(withChainOptions(payer.command("cap")))
    .description("set the payer's own daily spending cap (UTC days)")
    .option("--daily <amount>", 'e.g. "50 AGPT"')
    .option("--none", "remove the cap")
    .action(
      run(async (options: ChainOptions & { daily?: string; none?: boolean }) => {
        if ((options.daily === undefined) === (options.none !== true)) throw new UserError("give either --daily <amount> or --none");
        const p = await client(options);
        const value = options.none === true ? 0n : amount("--daily", options.daily!, p);
        if (value === 0n && options.none !== true) throw new UserError('--daily: a cap of 0 means none: use --none to remove the cap');
        const { hash, block } = await p.setDailyCap(value);
        print([`Daily cap ${value === 0n ? "removed" : `set to ${formatTokenAmount(value, p.unit)}`} in ${hash} (block ${block}).`]);
      }),
    );

  withConfirmations(withChainOptions(payer.command("refill")))
    .description("below a threshold, settlement pulls at least an amount from the allowance into the deposit")
    .option("--threshold <amount>", 'e.g. "20 AGPT"')
    .option("--amount <amount>", 'e.g. "100 AGPT"')
    .option("--off", "turn auto-refill off (shortfalls are still pulled)")
    .action(
      run(async (options: ChainOptions & { threshold?: string; amount?: string; off?: boolean }) => {
        const set = options.threshold !== undefined || options.amount !== undefined;
        if (set === (options.off === true)) throw new UserError("give --threshold and --amount, or --off");
        if (set && (options.threshold === undefined || options.amount === undefined)) throw new UserError("give both --threshold <amount> and --amount <amount>");
        const p = await client(options);
        const threshold = options.off === true ? 0n : amount("--threshold", options.threshold!, p);
        const value = options.off === true ? 0n : amount("--amount", options.amount!, p);
        const { hash, block } = await p.setAutoRefill(threshold, value);
        print([`Auto-refill ${options.off === true ? "off" : `below ${formatTokenAmount(threshold, p.unit)}, at least ${formatTokenAmount(value, p.unit)}`} in ${hash} (block ${block}).`]);
        const status = await p.status();
        if (options.off !== true && status.allowance < value) {
          print([`Note: the allowance (${formatTokenAmount(status.allowance, p.unit)}) is below the refill amount: \`agentgpt payer approve --amount ...\``]);
        }
      }),
    );
}
