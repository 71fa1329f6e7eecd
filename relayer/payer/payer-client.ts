/**
 * What a payer does on its own account of the settlement router: see where it stands, deposit (with an allowance or
 * an EIP-2612 permit), withdraw the un-escrowed deposit, approve the router to pull for auto-refills, and set its
 * daily cap and auto-refill. Every write is checked first (wallet balance, allowance, deposit), so a shortfall is
 * named before a transaction is sent, and waits for the requested confirmations.
 */
import { Contract, Signature, type Signer } from "ethers";

import { formatTokenAmount, type TokenUnit } from "../config/amount.js";
import type { Suite } from "../chain/index.js";
import { PayerError } from "./errors.js";

/** A payer's position, all amounts in token units. */
export interface PayerStatus {
  readonly account: string;
  /** the payment token in the payer's wallet */
  readonly wallet: bigint;
  /** what the router may pull from the wallet (deposits, auto-refills, bonds) */
  readonly allowance: bigint;
  /** un-escrowed deposit: what settlements charge first and what `withdraw` can take back */
  readonly deposit: bigint;
  readonly spentToday: bigint;
  /** 0: no cap */
  readonly dailyCap: bigint;
  readonly refillThreshold: bigint;
  readonly refillAmount: bigint;
}

export interface TxResult {
  readonly hash: string;
  readonly block: number;
}

const PERMIT_ABI = [
  "function name() view returns (string)",
  "function nonces(address) view returns (uint256)",
  "function DOMAIN_SEPARATOR() view returns (bytes32)",
  "function eip712Domain() view returns (bytes1, string, string, uint256, address, bytes32, uint256[])",
  "function permit(address owner, address spender, uint256 value, uint256 deadline, uint8 v, bytes32 r, bytes32 s)",
];

/** A permit's validity by default: an hour of chain time. */
export const DEFAULT_PERMIT_SECONDS = 3600;

export class PayerClient {
  constructor(
    private readonly suite: Suite,
    /** null: read-only (status) */
    private readonly signer: Signer | null,
    readonly account: string,
    /** blocks to wait for after each transaction (default 1) */
    private readonly confirmations = 1,
  ) {}

  get unit(): TokenUnit {
    return this.suite.paymentUnit;
  }

  private get routerAddress(): string {
    return this.suite.deployment.addresses.autoPayLLM;
  }

  private format(amount: bigint): string {
    return formatTokenAmount(amount, this.unit);
  }

  async status(): Promise<PayerStatus> {
    const { autoPayLLM, paymentToken } = this.suite;
    const [wallet, allowance, account] = await Promise.all([
      paymentToken.balanceOf(this.account),
      paymentToken.allowance(this.account, this.routerAddress),
      autoPayLLM.accountOf(this.account),
    ]);
    return {
      account: this.account,
      wallet,
      allowance,
      deposit: account.deposit_,
      spentToday: account.spentToday,
      dailyCap: account.dailyCap,
      refillThreshold: account.refillThreshold,
      refillAmount: account.refillAmount,
    };
  }

  /**
   * Moves `amount` from the wallet into the deposit. With an allowance short of it, signs an EIP-2612 permit for
   * exactly `amount` when the token supports one (`usePermit` not false), else refuses and names the fix.
   */
  async deposit(amount: bigint, usePermit = true): Promise<TxResult & { permit: boolean }> {
    this.checkPositive(amount, "--amount");
    const status = await this.status();
    if (status.wallet < amount) {
      throw new PayerError(
        "INSUFFICIENT_BALANCE",
        `${this.account} holds ${this.format(status.wallet)} in its wallet, less than the ${this.format(amount)} to deposit`,
      );
    }
    if (status.allowance >= amount) {
      return { ...(await this.send(this.suite.autoPayLLM.connect(this.writer()).deposit(amount))), permit: false };
    }
    if (!usePermit) {
      throw new PayerError(
        "INSUFFICIENT_ALLOWANCE",
        `the router may pull ${this.format(status.allowance)} from ${this.account}, less than ${this.format(amount)}: ` +
          `run \`agentgpt payer approve --amount "${this.format(amount)}"\` first, or deposit with a permit (leave out --no-permit)`,
      );
    }
    const { v, r, s, deadline } = await this.signPermit(amount);
    return {
      ...(await this.send(this.suite.autoPayLLM.connect(this.writer()).depositWithPermit(amount, deadline, v, r, s))),
      permit: true,
    };
  }

  /** Takes `amount` (or, with `all`, the whole deposit) of the un-escrowed deposit back to the wallet. */
  async withdraw(amount: bigint | "all"): Promise<TxResult & { amount: bigint }> {
    const { deposit } = await this.status();
    const value = amount === "all" ? deposit : amount;
    if (amount === "all" && value === 0n) {
      throw new PayerError("INSUFFICIENT_DEPOSIT", `${this.account} has no deposit to withdraw`);
    }
    this.checkPositive(value, "--amount");
    if (value > deposit) {
      throw new PayerError(
        "INSUFFICIENT_DEPOSIT",
        `${this.account} has ${this.format(deposit)} deposited (escrowed charges are not part of it), less than ${this.format(value)}`,
      );
    }
    return { ...(await this.send(this.suite.autoPayLLM.connect(this.writer()).withdraw(value))), amount: value };
  }

  /** Lets the router pull up to `amount` from the wallet (auto-refills and dispute bonds when the deposit is short). */
  async approve(amount: bigint): Promise<TxResult> {
    if (amount < 0n) throw new PayerError("INVALID_AMOUNT", "--amount: an allowance cannot be negative");
    const token = this.suite.paymentToken.connect(this.writer()) as Contract;
    return this.send(token.getFunction("approve")(this.routerAddress, amount));
  }

  /**
   * Sets the router's allowance to `amount` with a signed EIP-2612 permit (valid `validFor` seconds of chain time),
   * submitted by the payer itself: `approve` by signature, for tokens and wallets that prefer one. Refuses a token
   * without a permit, naming `agentgpt payer approve`.
   */
  async permit(amount: bigint, validFor = DEFAULT_PERMIT_SECONDS): Promise<TxResult & { deadline: bigint }> {
    if (amount < 0n) throw new PayerError("INVALID_AMOUNT", "--amount: an allowance cannot be negative");
    if (!Number.isSafeInteger(validFor) || validFor < 1) throw new PayerError("INVALID_AMOUNT", "--deadline: must be at least 1 second");
    const { v, r, s, deadline, token } = await this.signPermit(amount, validFor);
    const submit = token.getFunction("permit")(this.account, this.routerAddress, amount, deadline, v, r, s);
    return { ...(await this.send(submit as Promise<{ hash: string; wait(confirms?: number): Promise<unknown> }>)), deadline };
  }

  /** Sets the payer's own daily ceiling (UTC days); 0 removes it. */
  async setDailyCap(cap: bigint): Promise<TxResult> {
    if (cap < 0n) throw new PayerError("INVALID_AMOUNT", "--cap: a cap cannot be negative");
    return this.send(this.suite.autoPayLLM.connect(this.writer()).setDailyCap(cap));
  }

  /** Below `threshold` (or when short), settlement pulls at least `amount` from the allowance; both 0 turn it off. */
  async setAutoRefill(threshold: bigint, amount: bigint): Promise<TxResult> {
    const max = (1n << 128n) - 1n;
    for (const [name, value] of [["--threshold", threshold], ["--amount", amount]] as const) {
      if (value < 0n || value > max) throw new PayerError("INVALID_AMOUNT", `${name}: out of range (0 to 2^128 - 1 token units)`);
    }
    return this.send(this.suite.autoPayLLM.connect(this.writer()).setAutoRefill(threshold, amount));
  }

  /** An EIP-2612 permit of `amount` to the router, valid for `validFor` seconds of chain time (default an hour). */
  private async signPermit(amount: bigint, validFor = DEFAULT_PERMIT_SECONDS) {
    const signer = this.writer();
    const token = new Contract(await this.suite.paymentToken.getAddress(), PERMIT_ABI, signer);
    let name: string;
    let version = "1";
    let nonce: bigint;
    try {
      [name, nonce] = await Promise.all([token.getFunction("name")() as Promise<string>, token.getFunction("nonces")(this.account) as Promise<bigint>]);
      try {
        const domain = (await token.getFunction("eip712Domain")()) as [string, string, string];
        version = domain[2];
      } catch {
        // ERC-2612 tokens without ERC-5267: version "1" is the convention.
      }
    } catch (error) {
      throw new PayerError(
        "PERMIT_UNSUPPORTED",
        `${this.unit.symbol} has no EIP-2612 permit and the router's allowance is short: run \`agentgpt payer approve\` first`,
        { cause: error },
      );
    }
    const { chainId } = await signer.provider!.getNetwork();
    const latest = await signer.provider!.getBlock("latest");
    const deadline = BigInt((latest?.timestamp ?? Math.floor(Date.now() / 1000)) + validFor);
    const signature = await signer.signTypedData(
      { name, version, chainId, verifyingContract: await token.getAddress() },
      {
        Permit: [
          { name: "owner", type: "address" },
          { name: "spender", type: "address" },
          { name: "value", type: "uint256" },
          { name: "nonce", type: "uint256" },
          { name: "deadline", type: "uint256" },
        ],
      },
      { owner: this.account, spender: this.routerAddress, value: amount, nonce, deadline },
    );
    const { v, r, s } = Signature.from(signature);
    return { v, r, s, deadline, token };
  }

  private writer(): Signer {
    if (this.signer === null) throw new PayerError("TRANSACTION_FAILED", "this needs the payer's key: pass --keystore, --key-env or --node-account");
    return this.signer;
  }

  private checkPositive(amount: bigint, option: string): void {
    if (amount <= 0n) throw new PayerError("INVALID_AMOUNT", `${option}: must be more than 0 ${this.unit.symbol}`);
  }

  private async send(pending: Promise<{ hash: string; wait(confirms?: number): Promise<unknown> }>): Promise<TxResult> {
    const tx = await pending;
    const receipt = (await tx.wait(this.confirmations)) as { status?: number | null; blockNumber: number } | null;
    if (receipt === null || receipt.status !== 1) {
      throw new PayerError("TRANSACTION_FAILED", `transaction ${tx.hash} failed on-chain`);
    }
    return { hash: tx.hash, block: receipt.blockNumber };
  }
}
