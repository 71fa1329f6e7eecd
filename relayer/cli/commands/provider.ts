/**
 * `agentgpt provider ...`: getting providers paid. Anyone may release the escrow of batches whose dispute window
 * closed; a provider's payee sees and withdraws its credits. Logic lives in relayer/payout.
 *
 *   agentgpt provider credits [--provider openai]
 *   agentgpt provider release [--from-block N] [--dry-run]
 *   agentgpt provider withdraw --provider openai
 */
import type { Command } from "commander";

import { PayoutClient, PayoutError } from "../../payout/index.js";
import { openSession, print, runCommand, wholeNumber, withChainOptions, withConfirmations, type ChainOptions } from "../chain-session.js";

const run = <A extends unknown[]>(body: (...args: A) => Promise<void>) => runCommand([PayoutError], body);

export function register(program: Command): void {
  const provider = program.command("provider").description("release escrow after the dispute window; providers' credits and withdrawals");

  withConfirmations(withChainOptions(provider.command("credits")))
    .description("each provider's payee and the credits it may withdraw (no signer needed)")
    .option("--provider <name>", "only this provider, e.g. openai")
    .action(
      run(async (options: ChainOptions & { provider?: string }) => {
        const { suite } = await openSession(options, false);
        const payout = new PayoutClient(suite, null);
        const rows = await payout.credits(options.provider);
        const width = Math.max(8, ...rows.map((r) => r.name.length));
        print([
          `${"provider".padEnd(width)}  ${"payee".padEnd(42)}  credits`,
          ...rows.map((r) => `${r.name.padEnd(width)}  ${r.payee}  ${payout.format(r.credits)}`),
        ]);
      }),
    );

  withConfirmations(withChainOptions(provider.command("release")))
    .description("release every batch whose dispute window has closed to its providers' credits (anyone may)")
    .option("--from-block <n>", "look at batches settled from this block (default: 0)")
    .option("--dry-run", "list what is escrowed and what would be released, send nothing")
    .action(
      run(async (options: ChainOptions & { fromBlock?: string; dryRun?: boolean }) => {
        const session = await openSession(options, options.dryRun !== true);
        const payout = new PayoutClient(session.suite, session.signer?.signer ?? null, session.confirmations);
        const scan = await payout.scan(options.fromBlock === undefined ? 0 : wholeNumber("--from-block", options.fromBlock));
        const releasable = scan.escrowed.filter((b) => b.releasable);
        const waiting = scan.escrowed.length - releasable.length;
        print([
          `Escrowed batches: ${scan.escrowed.length} (${releasable.length} releasable now, ${waiting} in their window); ` +
            `already released: ${scan.released}. Chain time ${new Date(scan.now * 1000).toISOString()}.`,
        ]);
        let total = 0n;
        for (const batch of releasable) {
          if (options.dryRun === true) {
            print([`  would release ${batch.batchId}`]);
            continue;
          }
          const result = await payout.release(batch.batchId);
          total += result.amount;
          print([result.hash === null ? `  ${batch.batchId}: released by someone else` : `  released ${batch.batchId}: ${payout.format(result.amount)} in ${result.hash}`]);
        }
        const next = scan.escrowed.find((b) => !b.releasable);
        if (options.dryRun !== true) print([`Released ${payout.format(total)} to providers' credits.`]);
        if (next !== undefined) {
          print([next.closesAt === null ? `Next: ${next.batchId} waits for the L2 sequencer.` : `Next: ${next.batchId} at ${new Date(next.closesAt * 1000).toISOString()}.`]);
        }
      }),
    );

  withConfirmations(withChainOptions(provider.command("withdraw")))
    .description("pay a provider's credits to its payee (sign with the payee's key)")
    .requiredOption("--provider <name>", "e.g. openai")
    .action(
      run(async (options: ChainOptions & { provider: string }) => {
        const session = await openSession(options, true);
        const payout = new PayoutClient(session.suite, session.signer!.signer, session.confirmations);
        const { hash, amount, payee } = await payout.withdraw(options.provider, session.signer!.address);
        print([`Withdrew ${payout.format(amount)} of ${options.provider}'s credits to ${payee} in ${hash}.`]);
      }),
    );
}
