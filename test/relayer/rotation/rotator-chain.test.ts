/**
 * RotatorChain's transactions on a real `hardhat node`: the ROTATOR key's nonces. The funding transaction and the
 * `addKey` right after it used to share a nonce (ethers shared the `pending` count read before the funding was
 * mined), and two RotatorChains of one rotator key (the rotation stage and `keys revoke`) read nonces on their own:
 * a dropped `addKey` stalls a rotation, a dropped `revokeKey` leaves a leaked key live. Here every send of one key
 * goes through one nonce sequence per process, and a nonce another sender took is retried after reading the chain.
 */
import { createServer, type Server } from "node:http";
import { once } from "node:events";

import { expect } from "chai";
import { JsonRpcProvider, Wallet, parseEther } from "ethers";

import { RelayerKeyRotator__factory } from "../../../typechain-types/factories/governance/RelayerKeyRotator.sol/RelayerKeyRotator__factory.js";
import type { RelayerKeyRotator } from "../../../typechain-types/governance/RelayerKeyRotator.sol/RelayerKeyRotator.js";
import { RotatorChain } from "../../../relayer/rotation/rotator-chain.js";
import { deployChainSuite, type ChainSuite } from "../../helpers/chain-suite.js";
import { NODE_KEYS, startHardhatNode, type HardhatNode } from "../../helpers/hardhat-node.js";

/**
 * A proxy in front of the node where, on the next `steal` eth_getTransactionCount calls, another sender (the same
 * rotator key, straight to the node) sends a transaction with the nonce just read before the answer goes back: what a
 * second process of the rotator key does between this one's read and its send. Counts this side's raw sends.
 */
async function nonceThiefProxy(upstream: string, key: Wallet): Promise<{ url: string; steal: number; sends: number; close(): Promise<void> }> {
  const other = key.connect(new JsonRpcProvider(upstream, undefined, { staticNetwork: true, cacheTimeout: -1 }));
  const state = { steal: 0, sends: 0 };
  const server: Server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString("utf8");
    // ethers batches requests: one body is a request or an array of them
    const parsed = JSON.parse(body) as { method?: string } | { method?: string }[];
    const requests = Array.isArray(parsed) ? parsed : [parsed];
    state.sends += requests.filter((r) => r.method === "eth_sendRawTransaction").length;
    const answer = await fetch(upstream, { method: "POST", headers: { "content-type": "application/json" }, body });
    const json = (await answer.json()) as { result?: string } | { result?: string }[];
    const answers = Array.isArray(json) ? json : [json];
    for (const [i, request] of requests.entries()) {
      const result = answers[i]?.result;
      if (request.method === "eth_getTransactionCount" && state.steal > 0 && typeof result === "string") {
        state.steal--;
        await (await other.sendTransaction({ to: key.address, value: 0n, nonce: Number(BigInt(result)) })).wait();
      }
    }
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(json));
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as { port: number };
  return Object.assign(state, {
    url: `http://127.0.0.1:${port}`,
    close: async () => {
      other.provider!.destroy();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  });
}

describe("RotatorChain: one nonce sequence for the rotator key", function () {
  this.timeout(120_000);
  let node: HardhatNode;
  let suite: ChainSuite;
  let rotator: RelayerKeyRotator;
  const rotatorKey = new Wallet(NODE_KEYS[2]!);
  const fundWei = parseEther("1");

  const chainOver = (rpcUrl: string) =>
    new RotatorChain({ chain: "local", rpcUrl, router: suite.routerAddress, rotator: rotator.target as string, signer: rotatorKey, confirmations: 1, fundWei });
  // the rotator accepts one addition a second
  const nextSecond = () => node.rpc("evm_increaseTime", [2]);

  before(async function () {
    node = await startHardhatNode();
    suite = await deployChainSuite(node.url, { payers: 1 });
    rotator = await new RelayerKeyRotator__factory(suite.admin).deploy(suite.routerAddress, await suite.admin.getAddress(), rotatorKey.address, 2, 1);
    await rotator.waitForDeployment();
    await (await suite.router.grantRole(await suite.router.DEFAULT_ADMIN_ROLE(), await rotator.getAddress())).wait();
    await (await rotator.adoptKey(new Wallet(suite.relayerKey).address)).wait();
  });
  after(async function () {
    await node?.stop();
  });

  it("funds a new key, adds it and revokes the old one back to back, each with its own nonce", async function () {
    const chain = chainOver(node.url);
    const key = Wallet.createRandom().address;
    const first = await suite.provider.getTransactionCount(rotatorKey.address, "latest");
    expect(await chain.authorize(key)).to.equal("added");
    expect(await chain.revoke(new Wallet(suite.relayerKey).address)).to.equal("revoked");
    expect(await suite.provider.getBalance(key)).to.equal(fundWei);
    expect(await chain.liveKeys()).to.deep.equal([key]);
    // fund, addKey, revokeKey: three transactions, three nonces
    expect(await suite.provider.getTransactionCount(rotatorKey.address, "latest")).to.equal(first + 3);
  });

  it("two RotatorChains of the same key in one process (stage and keys revoke) queue on one nonce sequence", async function () {
    await nextSecond();
    const [a, b] = [chainOver(node.url), chainOver(node.url)];
    const [old] = await a.liveKeys();
    const key = Wallet.createRandom().address;
    // both want the same key added: one adds it, the other finds it done (nothing sent twice, nothing dropped)
    expect((await Promise.all([a.authorize(key), b.authorize(key)])).sort()).to.deep.equal(["added", "already"]);
    expect((await Promise.all([a.revoke(old!), b.revoke(old!)])).sort()).to.deep.equal(["not-live", "revoked"]);
    expect(await a.liveKeys()).to.deep.equal([key]);
    expect(await suite.provider.getBalance(key)).to.equal(fundWei);
  });

  it("a nonce another sender took is sent again with a fresh nonce after reading the chain", async function () {
    await nextSecond();
    const proxy = await nonceThiefProxy(node.url, rotatorKey);
    try {
      const chain = chainOver(proxy.url);
      const [old] = await chain.liveKeys();
      const key = Wallet.createRandom().address;
      proxy.steal = 1; // another sender takes the funding transaction's nonce
      expect(await chain.authorize(key)).to.equal("added");
      proxy.steal = 1; // and the revocation's
      expect(await chain.revoke(old!)).to.equal("revoked");
      // fund (refused: nonce too low, then again), addKey, revokeKey (refused, then again)
      expect(proxy.sends).to.equal(5);
      expect(await chain.liveKeys()).to.deep.equal([key]);
      expect(await suite.router.hasRole(await suite.router.RELAYER_ROLE(), old!)).to.equal(false);
    } finally {
      await proxy.close();
    }
  });
});
