import { expect } from "chai";
import { network } from "hardhat";

import type { RelayerKeyRotator } from "../../typechain-types/index.js";
import { GPT4_PRICE, deploySuite, row, settle, type Suite } from "../helpers/suite.js";

const { ethers, networkHelpers } = await network.create();
const { loadFixture, time } = networkHelpers;

const HOUR = 3600;

interface Fixture extends Suite {
  rotator: RelayerKeyRotator;
  rotatorKey: Awaited<ReturnType<typeof ethers.getSigners>>[number];
  fresh: Awaited<ReturnType<typeof ethers.getSigners>>;
}

/** The suite with a rotator granted the router's admin role by governance (here the plain admin account) and the
 * deployment's relayer key adopted into its care. */
async function fixture(): Promise<Fixture> {
  const suite = await deploySuite(ethers);
  const signers = await ethers.getSigners();
  const rotatorKey = signers[12]!;
  const rotator = (await ethers.deployContract("RelayerKeyRotator", [
    suite.routerAddress,
    suite.admin.address,
    rotatorKey.address,
    2,
    HOUR,
  ])) as unknown as RelayerKeyRotator;
  await suite.router.grantRole(await suite.router.DEFAULT_ADMIN_ROLE(), await rotator.getAddress());
  await rotator.adoptKey(suite.relayer.address);
  return { ...suite, rotator, rotatorKey, fresh: signers.slice(13, 18) };
}

describe("RelayerKeyRotator", function () {
  describe("constructor", function () {
    it("refuses a zero router or admin and invalid limits", async function () {
      const s = await loadFixture(fixture);
      const factory = await ethers.getContractFactory("RelayerKeyRotator");
      await expect(factory.deploy(ethers.ZeroAddress, s.admin.address, ethers.ZeroAddress, 2, HOUR)).to.be.revertedWithCustomError(
        factory,
        "RelayerKeyRotatorZeroAddress",
      );
      await expect(factory.deploy(s.routerAddress, ethers.ZeroAddress, ethers.ZeroAddress, 2, HOUR)).to.be.revertedWithCustomError(
        factory,
        "RelayerKeyRotatorZeroAddress",
      );
      for (const [n, interval] of [[0, HOUR], [9, HOUR], [2, 31 * 24 * HOUR]] as const) {
        await expect(factory.deploy(s.routerAddress, s.admin.address, ethers.ZeroAddress, n, interval))
          .to.be.revertedWithCustomError(factory, "RelayerKeyRotatorInvalidLimits")
          .withArgs(n, interval);
      }
    });
  });

  describe("addKey", function () {
    it("grants RELAYER_ROLE to a new key, which can settle at once", async function () {
      const s = await loadFixture(fixture);
      const next = s.fresh[0]!;
      await expect(s.rotator.connect(s.rotatorKey).addKey(next.address))
        .to.emit(s.rotator, "RelayerKeyAdded")
        .withArgs(next.address, s.rotatorKey.address)
        .and.to.emit(s.router, "RoleGranted");
      expect(await s.router.hasRole(await s.router.RELAYER_ROLE(), next.address)).to.equal(true);
      expect(await s.rotator.liveKeys()).to.deep.equal([s.relayer.address, next.address]);
      await settle(s, [row(s.payers[0]!.address, s.openai, s.gpt4, 1000n, GPT4_PRICE)], { signer: next });
    });

    it("attack: a leaked ROTATOR cannot exceed N live keys", async function () {
      const s = await loadFixture(fixture);
      await s.rotator.connect(s.rotatorKey).addKey(s.fresh[0]!.address);
      await time.increase(HOUR);
      await expect(s.rotator.connect(s.rotatorKey).addKey(s.fresh[1]!.address))
        .to.be.revertedWithCustomError(s.rotator, "RelayerKeyRotatorTooManyKeys")
        .withArgs(3, 2);
      expect(await s.router.hasRole(await s.router.RELAYER_ROLE(), s.fresh[1]!.address)).to.equal(false);
    });

    it("attack: a leaked ROTATOR cannot rotate faster than the interval, even after revoking to make room", async function () {
      const s = await loadFixture(fixture);
      await s.rotator.connect(s.rotatorKey).addKey(s.fresh[0]!.address);
      const next = BigInt((await ethers.provider.getBlock("latest"))!.timestamp) + BigInt(HOUR);
      await s.rotator.connect(s.rotatorKey).revokeKey(s.relayer.address, false);
      await expect(s.rotator.connect(s.rotatorKey).addKey(s.fresh[1]!.address))
        .to.be.revertedWithCustomError(s.rotator, "RelayerKeyRotatorTooSoon")
        .withArgs(next);
      // the next transaction's block is one second after the block increaseTo mines
      await time.increaseTo(next - 2n);
      await expect(s.rotator.connect(s.rotatorKey).addKey(s.fresh[1]!.address)).to.be.revertedWithCustomError(s.rotator, "RelayerKeyRotatorTooSoon");
      await time.increaseTo(next - 1n);
      await s.rotator.connect(s.rotatorKey).addKey(s.fresh[1]!.address);
    });

    it("refuses the zero address, the router, the rotator and a key that is already relayer", async function () {
      const s = await loadFixture(fixture);
      const r = s.rotator.connect(s.rotatorKey);
      for (const bad of [ethers.ZeroAddress, s.routerAddress, await s.rotator.getAddress()]) {
        await expect(r.addKey(bad)).to.be.revertedWithCustomError(s.rotator, "RelayerKeyRotatorInvalidKey").withArgs(bad);
      }
      await expect(r.addKey(s.relayer.address)).to.be.revertedWithCustomError(s.rotator, "RelayerKeyRotatorAlreadyRelayer");
    });

    it("only ROTATOR_ROLE adds (not a relayer, not a stranger)", async function () {
      const s = await loadFixture(fixture);
      const role = await s.rotator.ROTATOR_ROLE();
      for (const who of [s.relayer, s.stranger, s.pauser]) {
        await expect(s.rotator.connect(who).addKey(s.fresh[0]!.address))
          .to.be.revertedWithCustomError(s.rotator, "AccessControlUnauthorizedAccount")
          .withArgs(who.address, role);
      }
    });
  });

  describe("revokeKey (the leaked-key drill)", function () {
    it("revokes a managed key at once, right after an addition (never rate limited)", async function () {
      const s = await loadFixture(fixture);
      await s.rotator.connect(s.rotatorKey).addKey(s.fresh[0]!.address);
      await expect(s.rotator.connect(s.rotatorKey).revokeKey(s.relayer.address, false))
        .to.emit(s.rotator, "RelayerKeyRevoked")
        .withArgs(s.relayer.address, s.rotatorKey.address);
      await expect(settle(s, [row(s.payers[0]!.address, s.openai, s.gpt4, 1000n, GPT4_PRICE)])).to.be.revertedWithCustomError(
        s.router,
        "AccessControlUnauthorizedAccount",
      );
    });

    it("refuses to leave no managed key live unless allowNone", async function () {
      const s = await loadFixture(fixture);
      await expect(s.rotator.connect(s.rotatorKey).revokeKey(s.relayer.address, false))
        .to.be.revertedWithCustomError(s.rotator, "RelayerKeyRotatorLastKey")
        .withArgs(s.relayer.address);
      await s.rotator.connect(s.rotatorKey).revokeKey(s.relayer.address, true);
      expect(await s.rotator.liveKeys()).to.deep.equal([]);
    });

    it("attack: cannot touch a relayer key governance granted directly", async function () {
      const s = await loadFixture(fixture);
      const direct = s.fresh[4]!;
      await s.router.grantRole(await s.router.RELAYER_ROLE(), direct.address);
      await expect(s.rotator.connect(s.rotatorKey).revokeKey(direct.address, true))
        .to.be.revertedWithCustomError(s.rotator, "RelayerKeyRotatorNotManaged")
        .withArgs(direct.address);
    });

    it("governance may revoke a managed key through the rotator too", async function () {
      const s = await loadFixture(fixture);
      await s.rotator.connect(s.rotatorKey).addKey(s.fresh[0]!.address);
      await s.rotator.connect(s.admin).revokeKey(s.fresh[0]!.address, false);
      expect(await s.rotator.liveKeys()).to.deep.equal([s.relayer.address]);
      await expect(s.rotator.connect(s.stranger).revokeKey(s.relayer.address, true)).to.be.revertedWithCustomError(
        s.rotator,
        "AccessControlUnauthorizedAccount",
      );
    });
  });

  describe("what a ROTATOR can never do", function () {
    it("attack: grant or revoke any other role, on the router or the rotator, or change the limits", async function () {
      const s = await loadFixture(fixture);
      const r = s.rotatorKey;
      const admin = await s.router.DEFAULT_ADMIN_ROLE();
      const roles = [await s.router.RELAYER_ROLE(), await s.router.PAUSER_ROLE(), await s.router.ARBITER_ROLE(), admin];
      for (const role of roles) {
        await expect(s.router.connect(r).grantRole(role, r.address)).to.be.revertedWithCustomError(s.router, "AccessControlUnauthorizedAccount");
        await expect(s.router.connect(r).revokeRole(role, s.admin.address)).to.be.revertedWithCustomError(s.router, "AccessControlUnauthorizedAccount");
      }
      for (const role of [admin, await s.rotator.ROTATOR_ROLE()]) {
        await expect(s.rotator.connect(r).grantRole(role, s.stranger.address)).to.be.revertedWithCustomError(s.rotator, "AccessControlUnauthorizedAccount");
      }
      await expect(s.rotator.connect(r).setLimits(8, 0)).to.be.revertedWithCustomError(s.rotator, "AccessControlUnauthorizedAccount");
      await expect(s.rotator.connect(r).adoptKey(s.stranger.address)).to.be.revertedWithCustomError(s.rotator, "AccessControlUnauthorizedAccount");
      // and the rotator contract itself holds no role on the router but the admin role governance gave it
      const rotatorAddress = await s.rotator.getAddress();
      for (const role of roles.slice(0, 3)) expect(await s.router.hasRole(role, rotatorAddress)).to.equal(false);
    });

    it("attack: a key the leaked ROTATOR adds can only settle, bounded by the router's caps, and governance pauses it", async function () {
      const s = await loadFixture(fixture);
      const attacker = s.fresh[3]!;
      await s.rotator.connect(s.rotatorKey).addKey(attacker.address);
      // it is a relayer, nothing more
      await expect(s.router.connect(attacker).setModelPrice("gpt-4-turbo", 10n ** 30n)).to.be.revertedWithCustomError(
        s.router,
        "AccessControlUnauthorizedAccount",
      );
      // a charge above the price cap is rejected by the router, not paid
      const greedy = { ...row(s.payers[0]!.address, s.openai, s.gpt4, 1000n, GPT4_PRICE), amount: GPT4_PRICE * 10n };
      const result = await settle(s, [greedy], { signer: attacker });
      expect(result.rejected.size).to.equal(1);
      // governance revokes the attacker's key directly on the router at once; the rotator forgets it
      await s.router.revokeRole(await s.router.RELAYER_ROLE(), attacker.address);
      expect(await s.rotator.liveKeys()).to.deep.equal([s.relayer.address]);
    });
  });

  describe("governance", function () {
    it("takes the power back: the rotator then can neither add nor revoke", async function () {
      const s = await loadFixture(fixture);
      const admin = await s.router.DEFAULT_ADMIN_ROLE();
      const rotatorAddress = await s.rotator.getAddress();
      await s.router.revokeRole(admin, rotatorAddress);
      expect(await s.rotator.hasRotationPower()).to.equal(false);
      await expect(s.rotator.connect(s.rotatorKey).addKey(s.fresh[1]!.address))
        .to.be.revertedWithCustomError(s.router, "AccessControlUnauthorizedAccount")
        .withArgs(rotatorAddress, admin);
      await expect(s.rotator.connect(s.rotatorKey).revokeKey(s.relayer.address, true))
        .to.be.revertedWithCustomError(s.router, "AccessControlUnauthorizedAccount")
        .withArgs(rotatorAddress, admin);
      // and the keys stay as they were
      expect(await s.router.hasRole(await s.router.RELAYER_ROLE(), s.relayer.address)).to.equal(true);
      expect(await s.router.hasRole(await s.router.RELAYER_ROLE(), s.fresh[1]!.address)).to.equal(false);
    });

    it("revokes the ROTATOR key, sets the limits, and only the admin may", async function () {
      const s = await loadFixture(fixture);
      await expect(s.rotator.setLimits(3, 600)).to.emit(s.rotator, "RotationLimitsSet").withArgs(3, 600);
      await expect(s.rotator.setLimits(9, 600)).to.be.revertedWithCustomError(s.rotator, "RelayerKeyRotatorInvalidLimits");
      await s.rotator.revokeRole(await s.rotator.ROTATOR_ROLE(), s.rotatorKey.address);
      await expect(s.rotator.connect(s.rotatorKey).addKey(s.fresh[0]!.address)).to.be.revertedWithCustomError(
        s.rotator,
        "AccessControlUnauthorizedAccount",
      );
    });

    it("adopts only a key the router already trusts, within the cap", async function () {
      const s = await loadFixture(fixture);
      await expect(s.rotator.adoptKey(s.stranger.address))
        .to.be.revertedWithCustomError(s.rotator, "RelayerKeyRotatorInvalidKey")
        .withArgs(s.stranger.address);
      await s.router.grantRole(await s.router.RELAYER_ROLE(), s.fresh[0]!.address);
      await s.router.grantRole(await s.router.RELAYER_ROLE(), s.fresh[1]!.address);
      await s.rotator.adoptKey(s.fresh[0]!.address);
      await expect(s.rotator.adoptKey(s.fresh[1]!.address)).to.be.revertedWithCustomError(s.rotator, "RelayerKeyRotatorTooManyKeys");
    });
  });
});
