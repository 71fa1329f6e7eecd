/**
 * `agentgpt keys rotate` end to end: the real relayer process settles LiteLLM traffic on a `hardhat node` while its
 * key is rotated without a restart (grant, switch by the printed YAML, SIGHUP, drain of a batch left in flight on
 * the old key, revoke). Every call is charged exactly once, the batches in flight on the old key finish with it,
 * and no password or private key appears in any output or log. Where the timelock holds the admin role, the
 * grant is a governance proposal, prepared with the exact commands.
 */
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { expect } from "chai";
import { JsonRpcProvider, NonceManager, Wallet, encryptKeystoreJson, parseEther } from "ethers";
import type { Redis } from "ioredis";

import { RELAYER_ROLE } from "../../../relayer/chain/roles.js";
import { AGPT_UNIT } from "../../../relayer/chain/tokens.js";
import { deploySuite, writeDeployment } from "../../../relayer/demo/deploy-suite.js";
import { draftProposal, settlementRoleAction } from "../../../relayer/governance/index.js";
import { SettlementStore } from "../../../relayer/settler/settlement-store.js";
import { signerOfRecord } from "../../../relayer/settler/settler.js";
import { deployChainSuite, type ChainSuite } from "../../helpers/chain-suite.js";
import { NODE_KEYS, startHardhatNode, type HardhatNode } from "../../helpers/hardhat-node.js";
import { dropPrefix, REDIS_URL, testRedis, uniquePrefix } from "../../helpers/redis.js";
import { RELAYER_KEY_ENV, postSpend, startRelayer, writeRelayerConfig, type RelayerProcess, type RelayerSetup } from "../../helpers/relayer-process.js";
import { chargesByPayer, spendLog, type SpendLog } from "../../helpers/spend-logs.js";
import { agentgpt, type Run } from "../backup/helpers.js";
import { expectNoSecrets } from "./secrets.js";

const OLD_PW = "old-relayer-password-3141";
const NEW_PW = "new-relayer-password-2718";

async function oldKeystore(dir: string, key: string, password = OLD_PW): Promise<string> {
  const wallet = new Wallet(key);
  const path = join(dir, "relayer-old.json");
  await writeFile(path, await encryptKeystoreJson({ address: wallet.address, privateKey: wallet.privateKey }, password, { scrypt: { N: 1024 } }));
  return path;
}

describe("agentgpt keys rotate", function () {
  this.timeout(240_000);
  let node: HardhatNode;
  let redis: Redis;
  let prefix: string;
  let setup: RelayerSetup;
  let relayer: RelayerProcess | undefined;

  before(async function () {
    node = await startHardhatNode();
    redis = testRedis();
  });
  after(async function () {
    await node?.stop();
    redis?.disconnect();
  });
  afterEach(async function () {
    if (this.currentTest?.state === "failed" && relayer) process.stderr.write(`--- relayer logs ---\n${relayer.logs().slice(-5000)}\n`);
    await relayer?.stop();
    relayer = undefined;
    await node.rpc("evm_setAutomine", [true]);
    await dropPrefix(redis, prefix);
    if (setup) await rm(setup.dir, { recursive: true, force: true });
  });

  it("rotates the settler's key while it settles: grant, switch, SIGHUP, drain, revoke", async function () {
    const suite: ChainSuite = await deployChainSuite(node.url, { payers: 3 });
    prefix = uniquePrefix("rotate");
    setup = await writeRelayerConfig({ redisUrl: REDIS_URL, prefix, rpcUrls: [node.url], router: suite.routerAddress, payers: suite.payers.map((p) => p.address), chainId: suite.chainId });
    const oldPath = await oldKeystore(setup.dir, suite.relayerKey);
    const oldAddress = new Wallet(suite.relayerKey).address;
    const original = await readFile(setup.configFile, "utf8");
    await writeFile(setup.configFile, original.replace(`signer: { key_env: ${RELAYER_KEY_ENV} }`, `signer: { keystore: relayer-old.json, password_env: OLD_PW }`));
    const env = { OLD_PW, NEW_PW };
    const store = new SettlementStore(redis, prefix, "local");
    const runs: Run[] = [];
    const cli = async (args: string[]) => {
      const run = await agentgpt(args, env);
      runs.push(run);
      return run;
    };
    const initial = await Promise.all(suite.payers.map((p) => suite.router.balanceOf(p.address)));
    const logs: SpendLog[] = [];
    let n = 0;
    const traffic = async (count: number) => {
      const batch = Array.from({ length: count }, () => spendLog(n % 3, n++ % 2 === 0 ? "gpt-4-turbo" : "mixtral-8x22b", 300 + n * 17, prefix));
      logs.push(...batch);
      const response = await postSpend(setup.url, batch.map((log) => log.entry));
      expect(response.status, JSON.stringify(response.body)).to.equal(200);
    };
    const until = async (what: string, probe: () => Promise<boolean>, ms = 30_000) => {
      const started = Date.now();
      while (!(await probe())) {
        if (Date.now() - started > ms) throw new Error(`timed out: ${what}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    const settledAll = () => until("everything settled", async () => ((await store.stats()).receipts_settled ?? 0) === logs.length && (await store.active()).length === 0);
    const sentBy = (address: string) => until(`a batch in flight on ${address}`, async () => (await store.active()).some((r) => r.state === "sent" && signerOfRecord(r) === address));

    relayer = await startRelayer(setup, suite.relayerKey, env);
    await traffic(6);
    await settledAll();

    // 1. a new key, encrypted
    const newPath = join(setup.dir, "relayer-new.json");
    const created = await cli(["keys", "new", "--out", newPath, "--password-env", "NEW_PW"]);
    expect(created.code, created.stderr).to.equal(0);
    const newKey = await Wallet.fromEncryptedJson(await readFile(newPath, "utf8"), NEW_PW);

    // 2. grant (the caller, node account #0, is the router's admin here) and the switch to make
    const first = await cli(["keys", "rotate", "--config", setup.configFile, "--to", newPath, "--to-password-env", "NEW_PW"]);
    expect(first.code, first.stdout + first.stderr).to.equal(0);
    expect(first.stdout).to.include(`rotation on chain local (router ${suite.routerAddress}): ${oldAddress} -> ${newKey.address}`);
    expect(first.stdout).to.include(`step 1/5 grant: ${newKey.address} has no RELAYER_ROLE yet`);
    expect(first.stdout).to.include(`${newPath} opens with the password in $NEW_PW`);
    expect(first.stdout).to.match(new RegExp(`granted RELAYER_ROLE to ${newKey.address} in 0x[0-9a-f]{64}`));
    expect(first.stdout).to.include(`step 2/5 switch: ${newKey.address} holds RELAYER_ROLE`);
    expect(first.stdout).to.include(`first fund ${newKey.address} with gas`);
    expect(await suite.router.hasRole(RELAYER_ROLE, newKey.address)).to.equal(true);
    const snippet = first.stdout.split("\n").filter((line) => line.startsWith("    ")).map((line) => line.slice(4));
    expect(snippet).to.deep.equal([
      "settler:",
      "  signer:",
      `    keystore: ${newPath}`,
      "    password_env: NEW_PW",
      "    retiring:              # the key being replaced: finishes its own batches, signs nothing new",
      `      keystore: ${oldPath}`,
      "      password_env: OLD_PW",
    ]);
    // (the admin's NonceManager does not know of the grant the command sent from the same account: fund from another)
    await (await new Wallet(NODE_KEYS[4], suite.provider).sendTransaction({ to: newKey.address, value: parseEther("1") })).wait();

    // 3. a batch in flight on the old key when the switch happens
    await node.rpc("evm_setAutomine", [false]);
    await traffic(3);
    await sentBy(oldAddress);
    await writeFile(setup.configFile, original.replace(`settler:\n  signer: { key_env: ${RELAYER_KEY_ENV} }\n`, `${snippet.join("\n")}\n`));
    relayer.child.kill("SIGHUP");
    await until("the reload", async () => relayer!.logs().includes("SIGHUP: signing keys reloaded"));
    await traffic(3);
    await sentBy(newKey.address);

    // 4. the old key is not drained yet: nothing is revoked
    const draining = await cli(["keys", "rotate", "--config", setup.configFile]);
    expect(draining.code, draining.stdout + draining.stderr).to.equal(0);
    expect(draining.stdout).to.match(new RegExp(`step 4/5 drain: the settler signs new batches with ${newKey.address}; [1-9]\\d* batch\\(es\\) still in flight on ${oldAddress}`));
    expect(await suite.router.hasRole(RELAYER_ROLE, oldAddress)).to.equal(true);

    // 5. mined: drained, revoked, done
    await node.rpc("evm_setAutomine", [true]);
    await node.rpc("evm_mine", []);
    const last = await cli(["keys", "rotate", "--config", setup.configFile, "--wait", "60"]);
    expect(last.code, last.stdout + last.stderr).to.equal(0);
    expect(last.stdout).to.include(`step 5/5 revoke: nothing is in flight on ${oldAddress}; the live settler signs with ${newKey.address}`);
    expect(last.stdout).to.match(new RegExp(`revoked RELAYER_ROLE from ${oldAddress} in 0x[0-9a-f]{64}`));
    expect(last.stdout).to.include(`done: ${oldAddress} holds no RELAYER_ROLE; the settler signs with ${newKey.address}`);
    expect(last.stdout).to.include("remove retiring: from settler.signer");
    expect(await suite.router.hasRole(RELAYER_ROLE, oldAddress)).to.equal(false);

    // settlement never stopped: later traffic settles with the new key; every call charged exactly once
    await traffic(4);
    await settledAll();
    const expected = chargesByPayer(logs);
    for (const [i, payer] of suite.payers.entries()) expect(initial[i]! - (await suite.router.balanceOf(payer.address)), `payer ${i}`).to.equal(expected.get(i) ?? 0n);
    const senders = new Map<string, number>();
    for (const batchId of await store.finalIds()) {
      const record = (await store.get(batchId))!;
      const from = (await suite.provider.getTransaction(record.txHash!))!.from;
      senders.set(from, (senders.get(from) ?? 0) + 1);
    }
    expect(senders.get(oldAddress)).to.be.greaterThanOrEqual(2); // before the switch, and the one in flight during it
    expect(senders.get(newKey.address)).to.be.greaterThanOrEqual(2);
    expect([...senders.keys()].sort()).to.deep.equal([oldAddress, newKey.address].sort());

    expectNoSecrets(runs, [OLD_PW, NEW_PW, suite.relayerKey, newKey.privateKey], [relayer.logs()]);
  });

  it("prepares the governance proposal, with the exact commands, where the timelock holds the admin role", async function () {
    const provider = new JsonRpcProvider(node.url, undefined, { staticNetwork: true, pollingInterval: 100 });
    const deployer = new NonceManager(new Wallet(NODE_KEYS[0], provider));
    const relayerKey = NODE_KEYS[8];
    const suite = await deploySuite(deployer, {
      supply: 10n ** 9n * 10n ** 18n,
      disputeWindow: 60,
      timelockDelay: 120,
      votingDelay: 0,
      votingPeriod: 10,
      proposalThreshold: 10n ** 21n,
      quorumPercent: 4,
      providers: [{ name: "openai", payee: new Wallet(NODE_KEYS[9]).address }],
      models: [{ name: "gpt-4-turbo", pricePer1k: 12n * 10n ** 16n }],
      relayer: new Wallet(relayerKey).address,
      disputeBond: 10n ** 18n,
      handOver: true,
    });
    prefix = uniquePrefix("rotate-gov");
    const chainId = Number((await provider.getNetwork()).chainId);
    setup = await writeRelayerConfig({ redisUrl: REDIS_URL, prefix, rpcUrls: [node.url], router: suite.addresses.autoPayLLM, payers: [], chainId });
    const deployments = join(setup.dir, "deployments");
    await writeDeployment(deployments, chainId, suite);
    await oldKeystore(setup.dir, relayerKey);
    const config = await readFile(setup.configFile, "utf8");
    await writeFile(setup.configFile, config.replace(`signer: { key_env: ${RELAYER_KEY_ENV} }`, "signer: { keystore: relayer-old.json, password_env: OLD_PW }").replace(/payers:\n/, "payers: []\n"));
    const next = new Wallet(NODE_KEYS[7]);
    const newPath = join(setup.dir, "relayer-new.json");
    await writeFile(newPath, await encryptKeystoreJson({ address: next.address, privateKey: next.privateKey }, OLD_PW, { scrypt: { N: 1024 } }));

    const run = await agentgpt(["keys", "rotate", "--config", setup.configFile, "--to", newPath, "--deployments", deployments], { OLD_PW });
    expect(run.code, run.stdout + run.stderr).to.equal(0);
    const note = `Relayer key rotation on local: ${new Wallet(relayerKey).address} -> ${next.address}`;
    const action = settlementRoleAction({ addresses: suite.addresses, paymentUnit: AGPT_UNIT }, "grant", "RELAYER", next.address);
    const id = draftProposal([action], { proposer: new Wallet(NODE_KEYS[0]).address, note }).id;
    expect(run.stdout).to.include("the timelock holds the router's admin role: this takes a governance vote. Prepared proposal:");
    expect(run.stdout).to.include(`    Grant RELAYER_ROLE on AutoPayLLM to ${next.address}`);
    expect(run.stdout).to.include(`    target ${suite.addresses.autoPayLLM}, calldata ${action.calldata}`);
    expect(run.stdout).to.include(`proposal id when ${new Wallet(NODE_KEYS[0]).address} proposes it: ${id}`);
    expect(run.stdout).to.include(`    agentgpt governance propose-role --role RELAYER --account ${next.address} --note "${note}"`);
    expect(run.stdout).to.include(`    agentgpt governance vote ${id} for`);
    expect(run.stdout).to.include(`    agentgpt governance execute ${id}`);
    expect(await suite.router.hasRole(RELAYER_ROLE, next.address)).to.equal(false); // nothing granted behind governance's back
    expectNoSecrets([run], [OLD_PW, relayerKey, next.privateKey]);
  });
});
