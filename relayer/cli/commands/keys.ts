/**
 * `agentgpt keys ...`: the relayer's signing keys. Logic lives in relayer/keys; this file parses options and prints.
 * No command prints, logs or echoes a private key, a password or a keystore's contents.
 *
 *   agentgpt keys new --out keys/relayer.json             a new encrypted keystore (password: $AGENTGPT_KEYSTORE_PASSWORD or typed)
 *   agentgpt keys new --pkcs11 --module /usr/lib/softhsm/libsofthsm2.so --token relayer --label relayer-1
 *                                                         a new secp256k1 key inside an HSM token (PIN: $AGENTGPT_PKCS11_PIN)
 *   agentgpt keys show --pkcs11 --module ... --token ... --label ...   an HSM key's address, roles, gas, nonces
 *   agentgpt keys show --kms-key <id or ARN> [--region r]  an AWS KMS key's address, roles, gas, nonces
 *   agentgpt keys show --keystore keys/relayer.json       address, roles on AutoPayLLM, gas, pending nonces (--network/--rpc)
 *   agentgpt keys show --config relayer.yaml              the settler's configured keys, what the live settler signs with
 *   agentgpt keys rotate --config relayer.yaml --to keys/relayer-2.json
 *                                                         the next step of a rotation without downtime (run it again until done)
 *   agentgpt keys revoke 0x... --config relayer.yaml      the leaked-key drill: revoke a relayer key at once through the
 *                                                         RelayerKeyRotator (no vote); the settler first moves to a fresh key
 */
import { resolve as resolvePath } from "node:path";

import type { Command } from "commander";
import type { Redis } from "ioredis";
import { asRedis, createRedis } from "../../queue/index.js";
import { formatEther, getAddress, isAddress, type JsonRpcProvider } from "ethers";

import {
  ChainError,
  DEFAULT_ADMIN_ROLE,
  RELAYER_ROLE,
  connectSuite,
  loadDeployment,
  loadSigner,
  openChain,
  redactUrls,
  type LoadedSigner,
  type NetworkInfo,
} from "../../chain/index.js";
import { loadRelayerConfig, type Pkcs11SignerConfig, type RelayerConfig, type SignerConfig } from "../../config/index.js";
import { AutoPayLLM__factory } from "../../../typechain-types/factories/AutoPayLLM__factory.js";
import { GovernanceClient, GovernanceError, settlementRoleAction, type GovernanceAction } from "../../governance/index.js";
import {
  KeyError,
  configuredSigners,
  createKeystore,
  describeNonces,
  hasRole,
  keyStatus,
  keystoreAddress,
  createPkcs11SignerKey,
  loadConfiguredSigner,
  openConfigChain,
  SignerError,
  SigningKeyError,
  openKeystore,
  passwordFromFile,
  pickChain,
  readPassword,
  rotationPhase,
  switchSnippet,
  type ConfigChain,
  type ConfiguredKey,
  type RotationView,
} from "../../keys/index.js";
import { revokeRelayerKey } from "../../rotation/revoke.js";
import { setupRotation } from "../../rotation/setup.js";
import { inFlightOn } from "../../settler/settler.js";
import { SettlementStore } from "../../settler/settlement-store.js";
import { UserError } from "../errors.js";
import { userFacing } from "./relayer.js";

const DEFAULT_PASSWORD_ENV = "AGENTGPT_KEYSTORE_PASSWORD";
const DEFAULT_PIN_ENV = "AGENTGPT_PKCS11_PIN";

function run<A extends unknown[]>(body: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await body(...args);
    } catch (error) {
      if (error instanceof KeyError) throw new UserError(error.message, error.code === "LEDGER_UNAVAILABLE" ? 3 : 2, { cause: error });
      if (error instanceof SigningKeyError || error instanceof SignerError) throw new UserError(error.message, 2, { cause: error });
      if (error instanceof ChainError || error instanceof GovernanceError) throw new UserError(redactUrls(error.message), 2, { cause: error });
      if (error instanceof Error && !(error instanceof UserError)) {
        error.message = redactUrls(error.message);
        if (error.stack !== undefined) error.stack = redactUrls(error.stack);
      }
      throw error;
    }
  };
}

function print(lines: readonly string[]): void {
  process.stdout.write(`${lines.join("\n")}\n`);
}

function load(file: string): RelayerConfig {
  try {
    return loadRelayerConfig(file);
  } catch (error) {
    throw userFacing(error, file);
  }
}

async function openLedger(config: RelayerConfig): Promise<Redis> {
  const redis = asRedis(createRedis(config.redis, { lazyConnect: true, connectTimeout: 3000, maxRetriesPerRequest: 1, enableOfflineQueue: false, retryStrategy: () => null, connectionName: "agentgpt-keys" }));
  redis.on("error", () => undefined);
  try {
    await redis.connect();
    await redis.ping();
    return redis;
  } catch {
    redis.disconnect();
    throw new KeyError("LEDGER_UNAVAILABLE", `the settler's ledger (Redis, redis.url in ${config.files[0]}) does not answer: start Redis or fix redis.url (REDIS_URL); a rotation checks the ledger before revoking anything`);
  }
}

// ------------------------------------------------------------------------------------------------------- new

interface Pkcs11Flags {
  module?: string;
  token?: string;
  slot?: string;
  label?: string;
  keyId?: string;
  pinEnv: string;
  pinFile?: string;
}

interface NewKeyOptions extends Pkcs11Flags {
  out?: string;
  passwordEnv: string;
  pkcs11?: boolean;
}

/** The PKCS#11 signer settings the flags give (as the configuration's `kind: pkcs11` section would). */
function pkcs11Flags(options: Pkcs11Flags, command: string): Pkcs11SignerConfig {
  if (options.module === undefined) throw new UserError(`${command} --pkcs11: --module <path>: the HSM vendor's PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so`);
  if ((options.token === undefined) === (options.slot === undefined)) throw new UserError(`${command} --pkcs11: --token <label> or --slot <id>: which token (one of the two)`);
  const slot = options.slot === undefined ? undefined : Number(options.slot);
  if (slot !== undefined && (!Number.isInteger(slot) || slot < 0)) throw new UserError(`--slot ${options.slot}: the token's slot id (a whole number; softhsm2-util --show-slots lists them)`);
  if (options.keyId !== undefined && !/^(0x)?([0-9a-fA-F]{2})+$/.test(options.keyId)) throw new UserError(`--key-id ${options.keyId}: the key's CKA_ID in hex, e.g. 0x01a2`);
  return {
    module: resolvePath(options.module),
    token: options.token,
    slot,
    keyLabel: options.label,
    keyId: options.keyId,
    pinEnv: options.pinEnv,
    ...(options.pinFile === undefined ? {} : { pinFile: resolvePath(options.pinFile) }),
  };
}

async function newKey(options: NewKeyOptions): Promise<void> {
  if (options.pkcs11 === true) return newPkcs11Key(options);
  if (options.out === undefined) throw new UserError("keys new: --out <file> (a new encrypted keystore), or --pkcs11 --module ... --token ... --label ... (a key inside an HSM)");
  await newKeystore({ out: options.out, passwordEnv: options.passwordEnv });
}

async function newPkcs11Key(options: NewKeyOptions): Promise<void> {
  if (options.out !== undefined) throw new UserError("keys new --pkcs11: the key is created inside the token, there is no file: drop --out");
  if (options.label === undefined) throw new UserError("keys new --pkcs11: --label <name>: the new key's label on the token, e.g. relayer-1");
  const config = pkcs11Flags(options, "keys new");
  const created = await createPkcs11SignerKey({ ...config, keyLabel: options.label });
  const pin = config.pinFile === undefined ? `  pin_env: ${config.pinEnv}` : `  pin_file: ${config.pinFile}`;
  print([
    `created a secp256k1 key inside the PKCS#11 token "${created.token}" (${config.module})`,
    `  address ${created.address}`,
    `  label ${created.label}, id ${created.id}; private key sensitive and not extractable: it never leaves the token`,
    "Configure the settler to sign with it (settler.signer, or chains.<name>.signer):",
    "  signer:",
    "    kind: pkcs11",
    `    module: ${config.module}`,
    config.token !== undefined ? `    token: ${config.token}` : `    slot: ${config.slot}`,
    `    key_label: ${created.label}`,
    `  ${pin}`,
    "Next: give it RELAYER_ROLE and gas, then switch the settler to it (agentgpt keys rotate shows the steps).",
  ]);
}

async function newKeystore(options: { out: string; passwordEnv: string }): Promise<void> {
  const { password, source } = await readPassword(options.passwordEnv, `password for the new keystore ${options.out}: `, { confirm: true });
  const created = await createKeystore(options.out, password, { passwordSource: source });
  print([
    `created ${created.path}`,
    `  address ${created.address}`,
    `  encrypted with ${source} (scrypt, Web3 Secret Storage v3); file mode 0600. Keep a copy of the file and the password apart.`,
    `Next: give it RELAYER_ROLE and switch the settler to it: agentgpt keys rotate --config <relayer.yaml> --to ${created.path}`,
  ]);
}

// ------------------------------------------------------------------------------------------------------ show

interface ShowOptions extends Partial<Pkcs11Flags> {
  pkcs11?: boolean;
  kmsKey?: string;
  region?: string;
  endpoint?: string;
  keystore?: string;
  config?: string;
  chain?: string;
  network?: string;
  rpc?: string;
  router?: string;
  deployments?: string;
}

async function show(options: ShowOptions): Promise<void> {
  if (options.keystore === undefined && options.config === undefined && options.pkcs11 !== true && options.kmsKey === undefined) {
    throw new UserError("keys show: pass --keystore <file>, --pkcs11 ... or --kms-key <id> (one key), or --config <relayer.yaml> (the settler's keys)");
  }
  // a device key's address is asked of the device first (a wrong PIN or key id fails before any RPC)
  let device: { address: string; source: string } | undefined;
  if (options.pkcs11 === true || options.kmsKey !== undefined) {
    if (options.pkcs11 === true && options.kmsKey !== undefined) throw new UserError("keys show: --pkcs11 or --kms-key, not both");
    if (options.pkcs11 === true && options.label === undefined && options.keyId === undefined) throw new UserError("keys show --pkcs11: --label <name> or --key-id <hex>: which key on the token");
    const signerConfig: SignerConfig =
      options.pkcs11 === true
        ? { kind: "pkcs11", passwordEnv: DEFAULT_PASSWORD_ENV, pkcs11: pkcs11Flags({ ...options, pinEnv: options.pinEnv ?? DEFAULT_PIN_ENV }, "keys show") }
        : { kind: "aws_kms", passwordEnv: DEFAULT_PASSWORD_ENV, awsKms: { keyId: options.kmsKey!, region: options.region, endpoint: options.endpoint } };
    const loaded = await loadConfiguredSigner(signerConfig, { label: options.pkcs11 === true ? "--pkcs11" : "--kms-key" });
    await loaded.close();
    device = { address: loaded.signer.address, source: loaded.source };
  }
  let chain: { provider: JsonRpcProvider; label: string; router: string; close(): void };
  let config: RelayerConfig | undefined;
  let opened: ConfigChain | undefined;
  if (options.config !== undefined) {
    config = load(options.config);
    opened = await openConfigChain(pickChain(config, options.chain), options.deployments);
    chain = { provider: opened.connection.provider, label: `chain ${opened.config.name} (${opened.connection.chainId}) via ${opened.connection.rpcLabel}`, router: opened.router, close: () => opened!.connection.provider.destroy() };
  } else {
    const connection = await openChain({ network: options.network, rpc: options.rpc });
    const router = options.router ?? (await loadDeployment(connection.chainId, { deploymentsDir: options.deployments, networkName: connection.network.name })).addresses.autoPayLLM;
    chain = { provider: connection.provider, label: `${connection.network.name} (chain ${connection.chainId}) via ${connection.rpcLabel}`, router, close: () => connection.provider.destroy() };
  }
  try {
    const lines = [`${chain.label}, AutoPayLLM ${chain.router}`];
    const describe = async (address: string, source: string, role: string) => {
      const status = await keyStatus(chain.provider, chain.router, address);
      lines.push(
        `${role}${address}`,
        `  ${source}`,
        `  roles on AutoPayLLM: ${status.roles.length === 0 ? "none" : status.roles.join(", ")}`,
        `  gas balance: ${formatEther(status.balance)}`,
        `  nonces: ${describeNonces(status)}`,
      );
      return status;
    };
    if (options.keystore !== undefined) {
      await describe(await keystoreAddress(options.keystore), `keystore ${options.keystore} (address as the file declares it)`, "key ");
    }
    if (device !== undefined) await describe(device.address, `${device.source} (address from the device's public key)`, "key ");
    if (config !== undefined && opened !== undefined) {
      const signers = await configuredSigners(config, opened.config);
      await describe(signers.active.address, `${signers.active.source}, ${signers.at}`, "settler key (active) ");
      if (signers.retiring !== null) await describe(signers.retiring.address, `${signers.retiring.source}, ${signers.at}.retiring`, "settler key (retiring) ");
      let redis: Redis | undefined;
      try {
        redis = await openLedger(config);
        const store = new SettlementStore(redis, config.redis.prefix, opened.config.name);
        const [live, active] = await Promise.all([store.signers(), store.active()]);
        lines.push(
          live === null
            ? "live settler: has not reported its keys yet (not started since this version, or no pass yet)"
            : `live settler (${new Date(live.at).toISOString()}): active ${live.active}${live.retiring.length > 0 ? `, retiring ${live.retiring.join(", ")}` : ""}`,
        );
        const keys = [signers.active.address, ...(signers.retiring === null ? [] : [signers.retiring.address])];
        for (const address of keys) lines.push(`  batches in flight on ${address}: ${inFlightOn(active, address).length}`);
      } catch (error) {
        if (!(error instanceof KeyError)) throw error;
        lines.push(`live settler: unknown (${error.message})`);
      } finally {
        redis?.disconnect();
      }
    }
    print(lines);
  } finally {
    chain.close();
  }
}

// ---------------------------------------------------------------------------------------------------- rotate

interface RotateOptions {
  config: string;
  chain?: string;
  to?: string;
  toPasswordEnv?: string;
  toPasswordFile?: string;
  adminKeystore?: string;
  adminKeyEnv?: string;
  adminNodeAccount?: string;
  deployments?: string;
  wait?: string;
  note?: string;
}

interface Rotation {
  config: RelayerConfig;
  chain: ConfigChain;
  at: string;
  old: ConfiguredKey;
  next: ConfiguredKey;
  configActive: string;
  configRetiring: string | null;
}

async function resolveRotation(options: RotateOptions): Promise<Rotation> {
  const config = load(options.config);
  const chainConfig = pickChain(config, options.chain);
  const signers = await configuredSigners(config, chainConfig);
  let next: ConfiguredKey | null = null;
  if (options.to !== undefined) {
    const path = resolvePath(options.to);
    if (options.toPasswordEnv !== undefined && options.toPasswordFile !== undefined) {
      throw new UserError("--to-password-env and --to-password-file: give one (where the settler will read the new keystore's password)");
    }
    const passwordFile =
      options.toPasswordFile !== undefined ? resolvePath(options.toPasswordFile) : options.toPasswordEnv !== undefined ? null : signers.active.passwordFile;
    next = {
      address: await keystoreAddress(path),
      source: `keystore ${path}`,
      keystore: path,
      passwordEnv: options.toPasswordEnv ?? signers.active.passwordEnv,
      passwordFile,
    };
  }
  let old: ConfiguredKey;
  if (next === null) {
    if (signers.retiring === null) {
      throw new UserError(`--to <keystore>: the new key (create one with \`agentgpt keys new --out keys/relayer-2.json\`); ${signers.at} has no retiring key, so no rotation is under way`);
    }
    old = signers.retiring;
    next = signers.active;
  } else if (next.address === signers.active.address) {
    if (signers.retiring === null) {
      throw new UserError(`--to ${options.to}: the settler already signs with ${next.address} and ${signers.at} lists no retiring key: nothing to rotate`);
    }
    old = signers.retiring;
    next = { ...signers.active };
  } else {
    old = signers.active;
  }
  const chain = await openConfigChain(chainConfig, options.deployments);
  return { config, chain, at: signers.at, old, next, configActive: signers.active.address, configRetiring: signers.retiring?.address ?? null };
}

async function readView(rotation: Rotation, store: SettlementStore | null): Promise<RotationView> {
  const { provider } = rotation.chain.connection;
  const router = rotation.chain.router;
  const [newHasRole, oldHasRole, newBalance, oldLatestNonce, oldPendingNonce] = await Promise.all([
    hasRole(provider, router, RELAYER_ROLE, rotation.next.address),
    hasRole(provider, router, RELAYER_ROLE, rotation.old.address),
    provider.getBalance(rotation.next.address),
    provider.getTransactionCount(rotation.old.address, "latest"),
    provider.getTransactionCount(rotation.old.address, "pending"),
  ]);
  const [live, active] = store === null ? [null, []] : await Promise.all([store.signers(), store.active()]);
  return {
    chain: rotation.chain.config.name,
    router,
    old: rotation.old.address,
    next: rotation.next.address,
    newHasRole,
    oldHasRole,
    newBalance,
    configActive: rotation.configActive,
    configRetiring: rotation.configRetiring,
    live,
    inFlightOld: inFlightOn(active, rotation.old.address),
    oldLatestNonce,
    oldPendingNonce,
  };
}

/** The admin signer, if one is given (or, on a local node, account #0); null when none can be loaded. */
async function adminSigner(options: RotateOptions, provider: JsonRpcProvider, network: NetworkInfo): Promise<LoadedSigner | null> {
  const account = options.adminNodeAccount === undefined ? undefined : Number(options.adminNodeAccount);
  if (account !== undefined && (!Number.isInteger(account) || account < 0)) throw new UserError(`--admin-node-account ${options.adminNodeAccount}: an account index (0, 1, ...)`);
  try {
    return await loadSigner(provider, network, { account, keystore: options.adminKeystore, keyVariable: options.adminKeyEnv });
  } catch (error) {
    if (error instanceof ChainError && error.code === "NO_SIGNER" && options.adminKeystore === undefined && options.adminKeyEnv === undefined && account === undefined) return null;
    throw error;
  }
}

/**
 * Grants or revokes RELAYER_ROLE: directly when `admin` holds the router's DEFAULT_ADMIN_ROLE; else prepares the
 * governance proposal (the timelock holds the role) and prints the commands. True when the change was made.
 */
async function changeRole(rotation: Rotation, change: "grant" | "revoke", account: string, admin: LoadedSigner | null, options: RotateOptions, out: string[]): Promise<boolean> {
  const { provider, network, chainId } = rotation.chain.connection;
  const router = rotation.chain.router;
  if (admin !== null && (await hasRole(provider, router, DEFAULT_ADMIN_ROLE, admin.address))) {
    const contract = AutoPayLLM__factory.connect(router, admin.signer);
    const send = change === "grant" ? contract.grantRole : contract.revokeRole;
    await send.staticCall(RELAYER_ROLE, account);
    const receipt = await (await send(RELAYER_ROLE, account)).wait();
    out.push(`  ${change === "grant" ? "granted" : "revoked"} RELAYER_ROLE ${change === "grant" ? "to" : "from"} ${account} in ${receipt?.hash} (signed by ${admin.address}, ${admin.source}, the router's admin)`);
    return true;
  }
  let deployment;
  try {
    deployment = await loadDeployment(chainId, { deploymentsDir: options.deployments, networkName: rotation.chain.config.name });
  } catch (error) {
    throw new UserError(
      `${admin === null ? "no admin signer was given" : `${admin.address} is not the router's admin`}, and there is no deployment to find the governance contracts in: ` +
        `sign with the router's admin (--admin-keystore, --admin-key-env or --admin-node-account), or pass --deployments <dir>`,
      2,
      { cause: error },
    );
  }
  if (!(await hasRole(provider, router, DEFAULT_ADMIN_ROLE, deployment.addresses.timelock))) {
    throw new UserError(`neither ${admin?.address ?? "the caller (no admin signer given)"} nor the timelock ${deployment.addresses.timelock} holds the router's DEFAULT_ADMIN_ROLE: sign with the account that does (--admin-keystore, --admin-key-env or --admin-node-account)`);
  }
  const suite = await connectSuite(deployment, provider);
  const proposer = admin?.address ?? "0x0000000000000000000000000000000000000000";
  const client = new GovernanceClient(suite, proposer, network);
  const action: GovernanceAction = settlementRoleAction(client.actionContext, change, "RELAYER", account);
  const note = options.note ?? `Relayer key rotation on ${rotation.chain.config.name}: ${rotation.old.address} -> ${rotation.next.address}`;
  const networkFlag = network.local && network.name === "localhost" ? "" : ` --rpc <url>`;
  out.push(`  the timelock holds the router's admin role: this takes a governance vote. Prepared proposal:`);
  out.push(`    ${action.summary}`);
  out.push(`    target ${action.target}, calldata ${action.calldata}`);
  let id: bigint | null = null;
  if (admin !== null) {
    try {
      id = (await client.draft([action], note)).id;
    } catch (error) {
      if (!(error instanceof GovernanceError && error.code === "DUPLICATE_PROPOSAL")) throw error;
      out.push(`    ${error.message}`);
      return false;
    }
    out.push(`    proposal id when ${admin.address} proposes it: ${id}`);
  }
  const role = `--role RELAYER --account ${account}${change === "revoke" ? " --revoke" : ""}`;
  const idText = id === null ? "<id>" : id.toString();
  out.push(
    "  Run (a holder with enough delegated votes proposes; holders vote; anyone queues and executes):",
    `    agentgpt governance propose-role ${role} --note "${note}"${networkFlag}`,
    `    agentgpt governance vote ${idText} for${networkFlag}`,
    `    agentgpt governance queue ${idText}${networkFlag}`,
    `    agentgpt governance execute ${idText}${networkFlag}`,
    `  then run this command again: agentgpt keys rotate --config ${options.config}${options.to === undefined ? "" : ` --to ${options.to}`}`,
  );
  return false;
}

async function rotate(options: RotateOptions): Promise<void> {
  const waitSeconds = options.wait === undefined ? 0 : Number(options.wait);
  if (!Number.isInteger(waitSeconds) || waitSeconds < 0) throw new UserError(`--wait ${options.wait}: whole seconds to wait for the old key to drain`);
  const rotation = await resolveRotation(options);
  const { provider, network } = rotation.chain.connection;
  let redis: Redis | null = null;
  const out: string[] = [`rotation on chain ${rotation.chain.config.name} (router ${rotation.chain.router}): ${rotation.old.address} -> ${rotation.next.address}`];
  const flush = () => {
    print(out);
    out.length = 0;
  };
  try {
    let admin: LoadedSigner | null | undefined;
    const getAdmin = async () => (admin === undefined ? (admin = await adminSigner(options, provider, network)) : admin);
    const deadline = Date.now() + waitSeconds * 1000;
    for (let step = 0; step < 10; step++) {
      const store = await (async () => {
        if (rotation.configActive !== rotation.next.address) return null; // the ledger matters from the switch on
        redis ??= await openLedger(rotation.config);
        return new SettlementStore(redis, rotation.config.redis.prefix, rotation.chain.config.name);
      })();
      const view = await readView(rotation, store);
      const phase = rotationPhase(view);
      if (phase === "grant") {
        out.push(`step 1/5 grant: ${view.next} has no RELAYER_ROLE yet`);
        if (rotation.next.keystore !== null) {
          // the settler must be able to open the new key with the password it will be given
          const { password, source } =
            rotation.next.passwordFile !== null
              ? await passwordFromFile(rotation.next.passwordFile)
              : await readPassword(rotation.next.passwordEnv, `password of ${rotation.next.keystore}: `);
          await openKeystore(rotation.next.keystore, password, source);
          out.push(
            `  ${rotation.next.keystore} opens with ${source}: the settler will read it from ${rotation.next.passwordFile ?? `$${rotation.next.passwordEnv}`}`,
          );
        }
        if (!(await changeRole(rotation, "grant", view.next, await getAdmin(), options, out))) return;
        continue;
      }
      if (phase === "switch") {
        out.push(`step 2/5 switch: ${view.next} holds RELAYER_ROLE; the configuration still signs with ${view.old}`);
        if (view.newBalance === 0n) out.push(`  first fund ${view.next} with gas: it has none, and the settler pays gas from it`);
        out.push(
          `  In ${rotation.config.files[0]}, make the new key the signer and the old one retiring (${rotation.at}):`,
          ...switchSnippet(rotation.at, rotation.next, rotation.old).split("\n").map((line) => `    ${line}`),
          `  then reload the running relayer without stopping it: kill -HUP <pid of agentgpt relayer start> (or restart it),`,
          `  and run: agentgpt keys rotate --config ${options.config} --wait 600`,
        );
        return;
      }
      if (phase === "reload") {
        out.push(
          `step 3/5 reload: the configuration signs with ${view.next}, but the running settler ${view.live === null ? "has not reported its keys" : `still signs with ${view.live.active}`}`,
          `  reload it: kill -HUP <pid of agentgpt relayer start> (it refuses a key without RELAYER_ROLE and keeps the old one), then run this again`,
        );
        if (waitSeconds > 0 && Date.now() < deadline) {
          flush();
          await new Promise((resolve) => setTimeout(resolve, 2000));
          continue;
        }
        return;
      }
      if (phase === "drain") {
        const pending = view.oldPendingNonce - view.oldLatestNonce;
        out.push(`step 4/5 drain: the settler signs new batches with ${view.next}; ${view.inFlightOld.length} batch(es) still in flight on ${view.old}, ${pending} transaction(s) of it pending in the node`);
        for (const record of view.inFlightOld) out.push(`  ${record.batchId} ${record.state}, nonce ${record.nonce}`);
        if (waitSeconds > 0 && Date.now() < deadline) {
          flush();
          await new Promise((resolve) => setTimeout(resolve, 2000));
          continue;
        }
        out.push(`  run this again when they are mined (or with --wait <seconds>); nothing is revoked before`);
        return;
      }
      if (phase === "revoke") {
        out.push(`step 5/5 revoke: nothing is in flight on ${view.old}; the live settler signs with ${view.next}`);
        if (!(await changeRole(rotation, "revoke", view.old, await getAdmin(), options, out))) return;
        continue;
      }
      const stillListed = view.configRetiring === view.old;
      const balance = await provider.getBalance(view.old);
      out.push(
        `done: ${view.old} holds no RELAYER_ROLE; the settler signs with ${view.next}`,
        stillListed ? `  remove retiring: from ${rotation.at} in ${rotation.config.files[0]} and reload (kill -HUP), then keep the old keystore offline or destroy it` : "  the old key can be kept offline or destroyed",
        ...(balance > 0n ? [`  ${view.old} still holds ${formatEther(balance)} for gas: move it out with that key if you want it back`] : []),
      );
      return;
    }
  } finally {
    flush();
    (redis as Redis | null)?.disconnect();
    provider.destroy();
  }
}

// ---------------------------------------------------------------------------------------------------- revoke

interface RevokeOptions {
  config: string;
  allowNone?: boolean;
  timeout: string;
}

async function revoke(address: string, options: RevokeOptions): Promise<void> {
  if (!isAddress(address)) throw new KeyError("INVALID_INPUT", `"${address}" is not an address: give the relayer key to revoke (0x and 40 hex digits)`);
  const key = getAddress(address);
  const timeoutS = Number(options.timeout);
  if (!Number.isFinite(timeoutS) || timeoutS <= 0) throw new KeyError("INVALID_INPUT", `--timeout ${options.timeout}: a positive number of seconds`);
  const config = load(options.config);
  const redis = await openLedger(config);
  try {
    const rotation = await setupRotation(config, redis, { scheduled: false });
    const outcome = await revokeRelayerKey(rotation, key, {
      allowNone: options.allowNone === true,
      timeoutMs: timeoutS * 1000,
      onQueued: () => print([`revocation of ${key} requested: the rotating process carries it out (or this command, when none runs)`]),
    });
    if (!outcome.ok) throw new KeyError("NOT_READY", outcome.message);
    print([outcome.message]);
  } finally {
    redis.disconnect();
  }
}

export function register(program: Command): void {
  const keys = program.command("keys").description("the relayer's signing keys: create an encrypted keystore, inspect keys, rotate the settler's key");

  keys
    .command("new")
    .description("create a new key: in an encrypted JSON keystore (never overwrites a file), or with --pkcs11 inside an HSM token (never leaves it)")
    .option("--out <file>", "where to write the keystore, e.g. keys/relayer.json")
    .option("--password-env <name>", "environment variable holding the password (else it is asked on the terminal, twice)", DEFAULT_PASSWORD_ENV)
    .option("--pkcs11", "create a secp256k1 key inside a PKCS#11 token (an HSM) instead of a keystore")
    .option("--module <path>", "with --pkcs11: the HSM vendor's PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so")
    .option("--token <label>", "with --pkcs11: the token's label")
    .option("--slot <id>", "with --pkcs11: the token's slot id (instead of --token)")
    .option("--label <name>", "with --pkcs11: the new key's label on the token, e.g. relayer-1")
    .option("--key-id <hex>", "with --pkcs11: the new key's CKA_ID (default: 16 random bytes)")
    .option("--pin-env <name>", "with --pkcs11: variable holding the token's user PIN", DEFAULT_PIN_ENV)
    .option("--pin-file <file>", "with --pkcs11: file holding the token's user PIN (one line)")
    .action(run(async (options: NewKeyOptions) => newKey(options)));

  keys
    .command("show")
    .description("a key's address, roles on AutoPayLLM, gas balance and pending transactions; with --config, the settler's keys")
    .option("--keystore <file>", "the keystore to show (its address is read without the password)")
    .option("--pkcs11", "show a key inside a PKCS#11 token (with --module, --token or --slot, --label or --key-id; PIN from --pin-env / --pin-file)")
    .option("--module <path>", "with --pkcs11: the PKCS#11 library")
    .option("--token <label>", "with --pkcs11: the token's label")
    .option("--slot <id>", "with --pkcs11: the token's slot id")
    .option("--label <name>", "with --pkcs11: the key's label")
    .option("--key-id <hex>", "with --pkcs11: the key's CKA_ID")
    .option("--pin-env <name>", "with --pkcs11: variable holding the user PIN", DEFAULT_PIN_ENV)
    .option("--pin-file <file>", "with --pkcs11: file holding the user PIN")
    .option("--kms-key <id>", "show an AWS KMS key (id, ARN or alias/...; credentials: the AWS SDK's default chain)")
    .option("--region <region>", "with --kms-key: the AWS region")
    .option("--endpoint <url>", "with --kms-key: another KMS endpoint")
    .option("--config <file>", "relayer configuration: the settler's signer (and retiring key) and the chain")
    .option("--chain <name>", "with --config: which chain (default: the only one with rpc_urls)")
    .option("--network <name>", "without --config: localhost, arbitrumSepolia or polygonAmoy (default localhost)")
    .option("--rpc <url>", "without --config: JSON-RPC URL")
    .option("--router <address>", "without --config: AutoPayLLM (default: from the deployment)")
    .option("--deployments <dir>", "deployments directory (default deploy/deployments)")
    .action(run(async (options: ShowOptions) => show(options)));

  keys
    .command("rotate")
    .description("rotate the settler's key without downtime: grant, switch, drain, revoke; prints and does the next step, run it again until done")
    .requiredOption("--config <file>", "relayer configuration (the settler's signer, the chain, the ledger in Redis)")
    .option("--chain <name>", "which chain (default: the only one with rpc_urls)")
    .option("--to <keystore>", "the new key's keystore (from `agentgpt keys new`); not needed once the config names it as signer")
    .option("--to-password-env <name>", "variable the settler will read the new keystore's password from (default: the signer's password_env)")
    .option("--to-password-file <file>", "file the settler will read the new keystore's password from (read again on each SIGHUP: no restart needed)")
    .option("--admin-keystore <file>", `the router admin's keystore, to grant and revoke directly (password: $${DEFAULT_PASSWORD_ENV} or prompt)`)
    .option("--admin-key-env <name>", "variable holding the router admin's private key")
    .option("--admin-node-account <index>", "a local node's unlocked account as the router admin (default there: 0)")
    .option("--deployments <dir>", "deployments directory (router and governance contracts; default deploy/deployments)")
    .option("--wait <seconds>", "wait this long for the settler to reload and the old key to drain, then revoke", "0")
    .option("--note <text>", "reason added to a governance proposal")
    .action(run(async (options: RotateOptions) => rotate(options)));

  keys
    .command("revoke")
    .description("the leaked-key drill: revoke a relayer key now through the RelayerKeyRotator (no vote); if the settler signs with it, it first moves to a fresh key")
    .argument("<address>", "the relayer key to revoke")
    .requiredOption("--config <file>", "relayer configuration with settler.rotation (the ROTATOR key, the chains, the ledger)")
    .option("--allow-none", "revoke the active key even when the rotator's interval forbids a replacement yet (settlement waits; nothing is lost)")
    .option("--timeout <seconds>", "how long to wait for the outcome", "120")
    .action(run(async (address: string, options: RevokeOptions) => revoke(address, options)));
}
