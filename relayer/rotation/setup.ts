/**
 * Builds the rotation stage from the configuration: the ROTATOR key, the key factory, and for every chain that
 * settles with `settler.signer` its RelayerKeyRotator (chains.<name>.rotator, else the deployment's) and ledger.
 * Used by the settlement runtime (scheduled) and by `agentgpt keys revoke` (revocations only).
 */
import { dirname, isAbsolute, resolve } from "node:path";

import type { SettlerSigner } from "../keys/signers/device-signer.js";
import type { Redis } from "ioredis";
import type { Logger } from "pino";

import { loadDeployment } from "../chain/deployment.js";
import { redactUrl, redactUrls } from "../chain/networks.js";
import { askChainId } from "../chain/provider.js";
import type { RelayerConfig, RotationConfig } from "../config/index.js";
import { KeyError } from "../keys/errors.js";
import { useNativeScrypt } from "../keys/native-scrypt.js";
import { Lease } from "../settler/lease.js";
import { SettlementStore } from "../settler/settlement-store.js";
import { loadSigningKey } from "../settler/signing-key.js";
import { KeystoreKeyFactory, keystorePassword, type RelayerKeyFactory } from "./key-factory.js";
import { KeyRing, type RingKey } from "./key-ring.js";
import { Pkcs11KeyFactory } from "./pkcs11-key-factory.js";
import { RotationStage, type RotationChain } from "./rotation-stage.js";
import { RotatorChain } from "./rotator-chain.js";

export interface RotationSetup {
  readonly config: RotationConfig;
  readonly ring: KeyRing;
  readonly stage: RotationStage;
  readonly chains: readonly RotationChain[];
  /** opens a ring key (the configured signer or a created one) */
  open(key: RingKey): Promise<SettlerSigner>;
  /**
   * Releases what the setup opened: the rotator key's device session (PKCS#11) or client, created keys no follower
   * took, and the rotator chains' providers. After the stage stopped; keys handed out by `open` are the caller's.
   */
  close(): Promise<void>;
}

export interface SetupRotationOptions {
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly logger?: Logger;
  /** false: revocations only (the CLI) */
  readonly scheduled: boolean;
  /** the key factory (default: the one settler.rotation.key names, see configuredKeyFactory) */
  readonly factory?: RelayerKeyFactory;
}

/** The chains the rotation covers: those with RPC URLs that sign with `settler.signer` (not a chain's own). */
export function rotatedChains(config: RelayerConfig) {
  return config.chains.filter((chain) => chain.rpcUrls.length > 0 && chain.signer === undefined);
}

export async function setupRotation(config: RelayerConfig, redis: Redis, options: SetupRotationOptions): Promise<RotationSetup> {
  const rotation = config.settler.rotation;
  if (rotation === undefined) {
    throw new KeyError("NOT_READY", "settler.rotation is not configured: add it (every:, rotator:, keys_dir:, password_file:) to rotate or revoke keys through the RelayerKeyRotator");
  }
  const signer = config.settler.signer;
  if (signer === undefined) throw new KeyError("NO_SIGNER", "settler.rotation needs settler.signer: the key the rotation starts from");
  useNativeScrypt();
  const env = options.env ?? process.env;
  const baseDir = dirname(config.files[0] ?? ".");
  const loadOptions = { env, baseDir };
  const rotatorLoaded = await loadSigningKey(rotation.rotator, loadOptions);
  const rotatorKey = rotatorLoaded.wallet;
  const base = options.factory ?? configuredKeyFactory(rotation, baseDir, env);
  // keys this process just created, kept open so its settlers switch without opening them again (scrypt)
  const opened = new Map<string, SettlerSigner>();
  const factory: RelayerKeyFactory = {
    createRelayerKey: async () => {
      const created = await base.createRelayerKey();
      if (created.signer !== undefined) opened.set(created.address, created.signer);
      return created;
    },
    openRelayerKey: (ref) => base.openRelayerKey(ref),
  };
  const chains: RotationChain[] = [];
  for (const chain of rotatedChains(config)) {
    // the rotator's transactions go through one RPC URL (one nonce sequence): the first of rpc_urls that answers
    const { url: rpcUrl, chainId } = await firstAnsweringRpc(chain.name, chain.rpcUrls, chain.chainId, options.logger);
    const deployment = chain.router !== undefined && chain.rotator !== undefined ? null : await loadDeployment(chainId, { networkName: chain.name });
    const router = chain.router ?? deployment!.addresses.autoPayLLM;
    const rotator = chain.rotator ?? deployment?.addresses.relayerKeyRotator;
    if (rotator === undefined) {
      throw new KeyError(
        "NOT_READY",
        `chains.${chain.name}: no RelayerKeyRotator: set chains.${chain.name}.rotator, or deploy one (RelayerKeyRotator parameters) and grant it by governance (agentgpt governance propose relayer-rotator --grant)`,
      );
    }
    chains.push({
      rotator: new RotatorChain({
        chain: chain.name,
        rpcUrl,
        router,
        rotator,
        signer: rotatorKey,
        confirmations: chain.confirmations,
        fundWei: rotation.fundWei,
        ...(options.logger ? { logger: options.logger } : {}),
      }),
      store: new SettlementStore(redis, config.redis.prefix, chain.name),
    });
  }
  const ring = new KeyRing(redis, config.redis.prefix);
  let configured: SettlerSigner | null = null;
  let configuredHandedOut = false;
  const openConfigured = async () => (configured ??= (await loadSigningKey(signer, loadOptions)).wallet);
  const stage = new RotationStage({
    ring,
    lease: new Lease(redis, ring.key("lease"), rotation.leaseTtlMs),
    leaseTtlMs: rotation.leaseTtlMs,
    factory,
    chains,
    configuredAddress: async () => (await openConfigured()).address,
    everyMs: options.scheduled ? rotation.everyMs : null,
    pollMs: rotation.pollMs,
    ...(options.logger ? { logger: options.logger.child({ stage: "rotation" }) } : {}),
  });
  return {
    config: rotation,
    ring,
    stage,
    chains,
    open: async (key) => {
      if (key.ref.kind === "configured") {
        configuredHandedOut = true;
        return openConfigured();
      }
      const known = opened.get(key.address);
      if (known !== undefined) {
        opened.delete(key.address);
        return known;
      }
      return factory.openRelayerKey(key.ref);
    },
    close: async () => {
      for (const { rotator } of chains) rotator.provider.destroy();
      for (const signer of opened.values()) await (signer as SettlerSigner & { close?: () => Promise<void> }).close?.();
      opened.clear();
      // opened only for its address (the ring's first key) and never handed to a follower
      if (configured !== null && !configuredHandedOut) await (configured as SettlerSigner & { close?: () => Promise<void> }).close?.();
      await rotatorLoaded.close();
    },
  };
}

/** The factory `settler.rotation.key` names: keystores in keys_dir, or keys generated in the PKCS#11 token. */
export function configuredKeyFactory(rotation: RotationConfig, baseDir: string, env: Readonly<Record<string, string | undefined>>): RelayerKeyFactory {
  if (rotation.key === "pkcs11") {
    if (rotation.pkcs11 === undefined) throw new KeyError("NOT_READY", "settler.rotation.key: pkcs11 needs settler.rotation.pkcs11 (module:, token: or slot:, pin_env: or pin_file:)");
    return new Pkcs11KeyFactory({ config: rotation.pkcs11, baseDir, env });
  }
  return new KeystoreKeyFactory({
    dir: isAbsolute(rotation.keysDir) ? rotation.keysDir : resolve(baseDir, rotation.keysDir),
    password: keystorePassword(rotation, baseDir, env),
  });
}

/**
 * The first of `urls` that answers eth_chainId (within 5 s each) with the configured chain id (any, when none is
 * configured): a rotation stage must not stop because the first URL of a chain is down while the settler, which
 * fails over between them, keeps going. A URL answering another chain's id is skipped (a misconfigured URL must not
 * receive the rotator's transactions). Throws a KeyError naming every URL and what each answered.
 */
export async function firstAnsweringRpc(
  chain: string,
  urls: readonly string[],
  expectedChainId: number | undefined,
  logger?: Logger,
): Promise<{ url: string; chainId: number }> {
  const failures: string[] = [];
  for (const url of urls) {
    try {
      const chainId = await askChainId(url, 5000);
      if (expectedChainId !== undefined && chainId !== expectedChainId) throw new Error(`it serves chain id ${chainId}, not ${expectedChainId}`);
      if (failures.length > 0) logger?.warn({ chain, url: redactUrl(url), skipped: failures }, "rotation: an earlier RPC URL of this chain did not answer; the rotator sends through this one");
      return { url, chainId };
    } catch (error) {
      failures.push(`${redactUrl(url)}: ${redactUrls(error instanceof Error ? error.message : String(error))}`);
    }
  }
  throw new KeyError("NOT_READY", `chains.${chain}: no RPC URL answered eth_chainId for the rotation (${failures.join("; ")}): check rpc_urls`);
}
