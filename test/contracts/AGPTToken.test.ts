import { expect } from "chai";
import { network } from "hardhat";
import { Signature } from "ethers";

const { ethers, networkHelpers } = await network.create();

const SUPPLY = 1_000_000n * 10n ** 18n;

async function fixture() {
  const [holder, alice, bob] = await ethers.getSigners();
  const token = await ethers.deployContract("AGPTToken", [holder!.address, SUPPLY]);
  return { token, holder: holder!, alice: alice!, bob: bob! };
}

describe("AGPTToken", function () {
  it("is AgentGPT / AGPT with 18 decimals, the whole supply minted to the holder", async function () {
    const { token, holder } = await networkHelpers.loadFixture(fixture);
    expect(await token.name()).to.equal("AgentGPT");
    expect(await token.symbol()).to.equal("AGPT");
    expect(await token.decimals()).to.equal(18n);
    expect(await token.totalSupply()).to.equal(SUPPLY);
    expect(await token.balanceOf(holder.address)).to.equal(SUPPLY);
  });

  it("refuses a zero holder", async function () {
    const factory = await ethers.getContractFactory("AGPTToken");
    await expect(factory.deploy(ethers.ZeroAddress, 1n)).to.be.revertedWithCustomError(factory, "AGPTTokenZeroHolder");
  });

  it("accepts EIP-2612 permits", async function () {
    const { token, holder, alice } = await networkHelpers.loadFixture(fixture);
    const deadline = ethers.MaxUint256;
    const domain = {
      name: "AgentGPT",
      version: "1",
      chainId: (await ethers.provider.getNetwork()).chainId,
      verifyingContract: await token.getAddress(),
    };
    const types = {
      Permit: [
        { name: "owner", type: "address" },
        { name: "spender", type: "address" },
        { name: "value", type: "uint256" },
        { name: "nonce", type: "uint256" },
        { name: "deadline", type: "uint256" },
      ],
    };
    const sig = Signature.from(
      await holder.signTypedData(domain, types, { owner: holder.address, spender: alice.address, value: 5n, nonce: 0n, deadline }),
    );
    await token.connect(alice).permit(holder.address, alice.address, 5n, deadline, sig.v, sig.r, sig.s);
    expect(await token.allowance(holder.address, alice.address)).to.equal(5n);
    expect(await token.nonces(holder.address)).to.equal(1n);
  });

  it("counts votes once delegated, and moves them with transfers", async function () {
    const { token, holder, alice, bob } = await networkHelpers.loadFixture(fixture);
    expect(await token.getVotes(holder.address)).to.equal(0n); // not delegated yet
    await token.delegate(holder.address);
    expect(await token.getVotes(holder.address)).to.equal(SUPPLY);
    await token.connect(alice).delegate(bob.address);
    await token.transfer(alice.address, 100n);
    expect(await token.getVotes(holder.address)).to.equal(SUPPLY - 100n);
    expect(await token.getVotes(bob.address)).to.equal(100n);
    const block = await ethers.provider.getBlockNumber();
    await networkHelpers.mine();
    expect(await token.getPastVotes(bob.address, block)).to.equal(100n);
    expect(await token.CLOCK_MODE()).to.equal("mode=blocknumber&from=default");
  });
});
