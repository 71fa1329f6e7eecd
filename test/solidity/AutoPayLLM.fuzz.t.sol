// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {AutoPayLLM} from "../../contracts/AutoPayLLM.sol";
import {IAutoPayLLM} from "../../contracts/interfaces/IAutoPayLLM.sol";
import {MockERC20} from "../../contracts/mocks/MockERC20.sol";
import {TestBase} from "./utils/TestBase.sol";

contract AutoPayLLMFuzzTest is TestBase {
    AutoPayLLM internal router;
    MockERC20 internal token;
    address internal constant PAYER = address(0xA11CE);
    uint256 internal nonce;

    function setUp() public {
        VM.warp(1_750_000_000);
        token = new MockERC20("Pay", "PAY", 18);
        router = new AutoPayLLM(address(token), address(this));
        router.grantRole(router.RELAYER_ROLE(), address(this));
        router.registerProvider("openai", address(0xBEEF));
        token.mint(PAYER, type(uint128).max);
        VM.startPrank(PAYER);
        token.approve(address(router), type(uint256).max);
        router.deposit(type(uint96).max);
        VM.stopPrank();
    }

    function _settleOne(IAutoPayLLM.Charge memory charge) internal returns (uint256 escrowed) {
        IAutoPayLLM.Charge[] memory charges = new IAutoPayLLM.Charge[](1);
        charges[0] = charge;
        uint256 before = router.totalEscrow();
        bytes32 batchId = keccak256(abi.encode(nonce++));
        router.settleBatch(batchId, charges, keccak256(abi.encode("receipts", batchId)), "cid");
        return router.totalEscrow() - before;
    }

    /// @notice A row is charged iff 0 < amount <= ceil(tokens * cap / 1000); never a partial charge.
    function testFuzz_priceCap(uint64 tokens, uint128 price, uint128 amount) public {
        price = uint128(bound(price, 1, 1e24));
        router.setModelPrice("m", price);
        uint256 cap = (uint256(tokens) * price + 999) / 1000;
        amount = uint128(bound(amount, 0, cap + 2 > type(uint96).max ? type(uint96).max : cap + 2));
        uint256 charged = _settleOne(IAutoPayLLM.Charge(PAYER, 1, 1, tokens, amount));
        bool accepted = amount != 0 && amount <= cap;
        assertEq(charged, accepted ? amount : 0, "charged");
        if (tokens != 0) assertTrue(cap != 0, "a call with usage has a non-zero cap");
    }

    /// @notice Whatever the rows, a payer is never charged more than its daily cap in one UTC day.
    function testFuzz_dailyCapHolds(uint96 cap, uint256 seed) public {
        cap = uint96(bound(cap, 1, 1e20));
        router.setModelPrice("m", 1e24);
        VM.prank(PAYER);
        router.setDailyCap(cap);
        uint256 total;
        for (uint256 i = 0; i < 8; i++) {
            uint128 amount = uint128(bound(uint256(keccak256(abi.encode(seed, i))), 1, uint256(cap) / 2 + 1));
            total += _settleOne(IAutoPayLLM.Charge(PAYER, 1, 1, 1e9, amount));
        }
        assertLe(total, cap, "spent today <= cap");
        (, uint256 spentToday,,,) = router.accountOf(PAYER);
        assertEq(spentToday, total, "spentToday");
    }

    /// @notice Whatever the rows, a model never takes more than its governed daily budget in one UTC day.
    function testFuzz_modelBudgetHolds(uint128 budget, uint256 seed) public {
        budget = uint128(bound(budget, 1, 1e20));
        router.setModelPrice("m", 1e24);
        router.setModelBudget("m", budget);
        uint256 total;
        for (uint256 i = 0; i < 8; i++) {
            uint128 amount = uint128(bound(uint256(keccak256(abi.encode(seed, i))), 1, uint256(budget) / 2 + 1));
            total += _settleOne(IAutoPayLLM.Charge(PAYER, 1, 1, 1e9, amount));
        }
        assertLe(total, budget, "model spend today <= budget");
    }
}
