/**
 * The leaked-key drill in the rotation stage, on a real `hardhat node` and a real Redis: a drill whose step fails
 * after the switch to the fresh key (here: the revokeKey transaction fails once) is retried on the next tick and still
 * revokes the key that was in use, reporting the key the settler moved to. Before, the retry found the key already
 * retiring and reported "it was retiring", so no test could tell a drill that revoked the key in use from one that
 * revoked some other key.
 */
import { expect } from "chai";
import { Wallet, id } from "ethers";
import type { Redis } from "ioredis";

import { RelayerKeyRotator__factory } from "../../../typechain-types/factories/governance/RelayerKeyRotator.sol/RelayerKeyRotator__factory.js";
import type { RelayerKeyFactory } from "../../../relayer/rotation/key-factory.js";
import { KeyRing } from "../../../relayer/rotation/key-ring.js";
import { RotationStage } from "../../../relayer/rotation/rotation-stage.js";
import { RotatorChain } from "../../../relayer/rotation/rotator-chain.js";
import { Lease } from "../../../relayer/settler/lease.js";
import { SettlementStore } from "../../../relayer/settler/settlement-store.js";
import { deployChainSuite } from "../../helpers/chain-suite.js";
import { NODE_KEYS, startHardhatNode, type HardhatNode } from "../../helpers/hardhat-node.js";
import { dropPrefix, testRedis, uniquePrefix } from "../../helpers/redis.js";

const RELAYER_ROLE = id("RELAYER_ROLE");

/** A RotatorChain whose next revokeKey of an address fails once (a transaction lost, an RPC error), as told. */
class FailingOnce extends RotatorChain {
  readonly failRevoke = new Set<string>();

  override async revoke(address: string, allowNone = false): Promise<"revoked" | "not-live"> {
    if (this.failRevoke.delete(address)) throw new Error(`injected: revokeKey(${address}) failed`);
    return super.revoke(address, allowNone);
  }
}

describe("RotationStage: the leaked-key drill retried after its switch", function () {
  this.timeout(120_000);
  let node: HardhatNode;
  let redis: Redis;
  let prefix: string;

  before(async function () {
    node = await startHardhatNode();
    redis = testRedis();
    prefix = uniquePrefix("rotstage");
  });
  after(async function () {
    if (redis) {
      await dropPrefix(redis, prefix).catch(() => undefined);
      redis.disconnect();
    }
    await node?.stop();
  });

  it("revokes the key in use and names the fresh key, though the first try failed after the switch", async function () {
    const suite = await deployChainSuite(node.url, { payers: 1 });
    const rotatorKey = new Wallet(NODE_KEYS[2]!);
    const inUse = new Wallet(suite.relayerKey).address;
    const rotator = await new RelayerKeyRotator__factory(suite.admin).deploy(suite.routerAddress, await suite.admin.getAddress(), rotatorKey.address, 2, 1);
    await rotator.waitForDeployment();
    await (await suite.router.grantRole(await suite.router.DEFAULT_ADMIN_ROLE(), await rotator.getAddress())).wait();
    await (await rotator.adoptKey(inUse)).wait();

    const chain = new FailingOnce({
      chain: "local",
      rpcUrl: node.url,
      router: suite.routerAddress,
      rotator: await rotator.getAddress(),
      signer: rotatorKey,
      confirmations: 1,
      fundWei: 10n ** 16n,
    });
    // keys made in memory: what the stage does with them is under test, not where they live
    const factory: RelayerKeyFactory = {
      createRelayerKey: async () => {
        const wallet = Wallet.createRandom();
        return { address: wallet.address, ref: { kind: "keystore", path: `/nowhere/${wallet.address}.json` }, signer: wallet };
      },
      openRelayerKey: async () => {
        throw new Error("not opened in this test");
      },
    };
    const ring = new KeyRing(redis, prefix);
    const stage = new RotationStage({
      ring,
      lease: new Lease(redis, ring.key("lease"), 3000),
      leaseTtlMs: 3000,
      factory,
      chains: [{ rotator: chain, store: new SettlementStore(redis, prefix, "local") }],
      configuredAddress: async () => inUse,
      everyMs: null,
      // no settler runs here: the drill waits this long for one to move, then revokes anyway
      switchTimeoutMs: 200,
    });
    try {
      await stage.tick(); // the ring starts from the configured key
      expect((await ring.get())!.active.address).to.equal(inUse);

      await ring.requestRevoke(inUse, false);
      chain.failRevoke.add(inUse);
      let failure: unknown = null;
      await stage.tick().catch((error: unknown) => (failure = error));
      expect(String(failure)).to.include("injected");
      // the switch happened before the failure: the key in use is retiring now, still live on the router
      const halfway = (await ring.get())!;
      const fresh = halfway.active.address;
      expect(fresh).to.not.equal(inUse);
      expect(halfway.active.drill).to.equal(true);
      expect(halfway.retiring.map((key) => key.address)).to.deep.equal([inUse]);
      expect(await suite.router.hasRole(RELAYER_ROLE, inUse)).to.equal(true);
      expect(await ring.revokeOutcome(inUse)).to.equal(null);

      await stage.tick(); // the retry
      const outcome = (await ring.revokeOutcome(inUse))!;
      expect(outcome.ok).to.equal(true);
      expect(outcome.message).to.equal(`revoked on every chain; the settler moved to ${fresh}`);
      expect(outcome.replacedBy).to.equal(fresh);
      expect(await suite.router.hasRole(RELAYER_ROLE, inUse)).to.equal(false);
      expect(await suite.router.hasRole(RELAYER_ROLE, fresh)).to.equal(true);
      expect((await ring.get())!.retiring.find((key) => key.address === inUse)?.revoked).to.equal(true);
      expect(await ring.nextRevokeRequest()).to.equal(null);
    } finally {
      await stage.stop();
      chain.provider.destroy();
    }
  });
});
