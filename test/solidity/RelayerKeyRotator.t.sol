// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";

import {AutoPayLLM} from "../../contracts/AutoPayLLM.sol";
import {RelayerKeyRotator} from "../../contracts/governance/RelayerKeyRotator.sol";
import {MockERC20} from "../../contracts/mocks/MockERC20.sol";
import {TestBase} from "./utils/TestBase.sol";

/// @notice The rotator's holder: acts as ROTATOR (or as governance) on a real router, counting every outcome.
contract RotatorHandler is TestBase {
    AutoPayLLM public router;
    RelayerKeyRotator public rotator;
    address[] public everAdded;
    /// @notice additions that succeeded although they broke the interval or the cap (must stay 0)
    uint256 public limitBreaks;
    /// @notice the live count after the last successful call
    uint256 public lastLive;
    uint256 public maxLiveSeen;

    constructor() {
        router = new AutoPayLLM(address(new MockERC20("Pay", "PAY", 18)), address(this));
        rotator = new RelayerKeyRotator(IAccessControl(address(router)), address(this), address(this), 2, 3600);
        router.grantRole(router.DEFAULT_ADMIN_ROLE(), address(rotator));
    }

    function _live() internal view returns (uint256 live) {
        for (uint256 i; i < everAdded.length; ++i) {
            if (router.hasRole(router.RELAYER_ROLE(), everAdded[i])) ++live;
        }
    }

    uint256 internal now_ = 1_750_000_000;

    function addKey(uint160 seed, uint32 wait) external {
        now_ += bound(wait, 0, 2 hours);
        VM.warp(now_);
        address key = address(uint160(bound(seed, 1, type(uint160).max)));
        uint256 before = _live();
        uint256 next = rotator.nextAddAt();
        try rotator.addKey(key) {
            everAdded.push(key);
            if (now_ < next || before + 1 > rotator.maxKeys()) ++limitBreaks;
        } catch {}
        _record();
    }

    function revokeKey(uint256 pick, bool allowNone) external {
        if (everAdded.length == 0) return;
        address key = everAdded[pick % everAdded.length];
        try rotator.revokeKey(key, allowNone) {} catch {}
        _record();
    }

    /// @notice Governance revokes directly on the router: the rotator must forget the key, not count it.
    function governanceRevoke(uint256 pick) external {
        if (everAdded.length == 0) return;
        router.revokeRole(router.RELAYER_ROLE(), everAdded[pick % everAdded.length]);
        _record();
    }

    function setLimits(uint8 maxKeys, uint64 interval) external {
        maxKeys = uint8(bound(maxKeys, 1, 3));
        interval = uint64(bound(interval, 0, 2 hours));
        // lowering the cap below the live count is allowed (nothing is revoked); the invariant bounds it by the max
        rotator.setLimits(maxKeys, interval);
    }

    function _record() internal {
        lastLive = _live();
        if (lastLive > maxLiveSeen) maxLiveSeen = lastLive;
    }

    function everAddedCount() external view returns (uint256) {
        return everAdded.length;
    }
}

contract RelayerKeyRotatorInvariantTest is TestBase {
    RotatorHandler internal handler;

    function setUp() public {
        VM.warp(1_750_000_000);
        handler = new RotatorHandler();
    }

    function targetContracts() public view returns (address[] memory targets) {
        targets = new address[](1);
        targets[0] = address(handler);
    }

    /// @notice Never more live managed keys than the largest cap governance may set in the handler (3), and no
    /// addition ever succeeded against the interval or the cap in force.
    function invariant_neverMoreThanMaxKeysLive() public view {
        assertEq(handler.limitBreaks(), 0, "an addition broke the interval or the cap");
        assertLe(handler.maxLiveSeen(), 3, "live keys above every cap");
        assertLe(handler.rotator().liveKeys().length, 3, "liveKeys above every cap");
    }

    /// @notice What the rotator reports as live is exactly its managed keys holding RELAYER_ROLE, and the rotator
    /// never holds any other role on the router than the one governance gave it.
    function invariant_liveKeysMatchRouter() public view {
        RelayerKeyRotator rotator = handler.rotator();
        AutoPayLLM router = handler.router();
        address[] memory live = rotator.liveKeys();
        for (uint256 i; i < live.length; ++i) {
            assertTrue(router.hasRole(router.RELAYER_ROLE(), live[i]), "reported live without the role");
            assertTrue(rotator.isManaged(live[i]), "reported live but not managed");
        }
        assertTrue(!router.hasRole(router.RELAYER_ROLE(), address(rotator)), "rotator made itself relayer");
        assertTrue(!router.hasRole(router.PAUSER_ROLE(), address(rotator)), "rotator holds PAUSER");
        assertTrue(!router.hasRole(router.ARBITER_ROLE(), address(rotator)), "rotator holds ARBITER");
    }
}

contract RelayerKeyRotatorFuzzTest is TestBase {
    AutoPayLLM internal router;
    RelayerKeyRotator internal rotator;
    address internal constant ROTATOR = address(0xA0);
    address internal constant GOVERNANCE = address(0x60);

    function setUp() public {
        VM.warp(1_750_000_000);
        router = new AutoPayLLM(address(new MockERC20("Pay", "PAY", 18)), GOVERNANCE);
        rotator = new RelayerKeyRotator(IAccessControl(address(router)), GOVERNANCE, ROTATOR, 2, 3600);
        bytes32 admin = router.DEFAULT_ADMIN_ROLE();
        VM.prank(GOVERNANCE);
        router.grantRole(admin, address(rotator));
    }

    /// @notice An addition succeeds iff at least `interval` passed since the previous one (and the cap allows).
    function testFuzz_intervalRespected(uint64 interval, uint64 wait) public {
        interval = uint64(bound(interval, 1, 30 days));
        wait = uint64(bound(wait, 0, 31 days));
        VM.prank(GOVERNANCE);
        rotator.setLimits(8, interval);
        VM.prank(ROTATOR);
        rotator.addKey(address(0x1001));
        // read the addition's time from the contract: the optimizer may reuse an earlier `block.timestamp` read
        uint256 first = rotator.lastAddedAt();
        VM.warp(first + wait);
        if (wait < interval) VM.expectRevert(abi.encodeWithSelector(RelayerKeyRotator.RelayerKeyRotatorTooSoon.selector, first + interval));
        VM.prank(ROTATOR);
        rotator.addKey(address(0x1002));
        assertEq(router.hasRole(router.RELAYER_ROLE(), address(0x1002)) ? 1 : 0, wait >= interval ? 1 : 0, "second key live");
    }

    /// @notice With any cap, additions one interval apart stop exactly at the cap; revocations free a slot at once.
    function testFuzz_neverMoreThanCap(uint8 cap, uint8 attempts) public {
        cap = uint8(bound(cap, 1, 8));
        attempts = uint8(bound(attempts, 1, 12));
        VM.prank(GOVERNANCE);
        rotator.setLimits(cap, 60);
        uint256 added;
        uint256 now_ = 1_750_000_000;
        for (uint160 i = 1; i <= attempts; ++i) {
            now_ += 60;
            VM.warp(now_);
            if (added >= cap) VM.expectRevert(abi.encodeWithSelector(RelayerKeyRotator.RelayerKeyRotatorTooManyKeys.selector, added + 1, cap));
            VM.prank(ROTATOR);
            rotator.addKey(address(0x2000 + i));
            if (added < cap) ++added;
            assertLe(rotator.liveKeys().length, cap, "live above cap");
        }
        assertEq(rotator.liveKeys().length, added, "live count");
    }

    /// @notice The ROTATOR cannot reach any other role on the router or the rotator, whatever the account.
    function testFuzz_rotatorCannotGrantOtherRoles(address who) public {
        VM.assume(who != address(0) && who != GOVERNANCE);
        bytes32 admin = router.DEFAULT_ADMIN_ROLE();
        bytes32 pauser = router.PAUSER_ROLE();
        bytes32 rotatorRole = rotator.ROTATOR_ROLE();
        VM.startPrank(ROTATOR);
        VM.expectRevert(abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, ROTATOR, admin));
        router.grantRole(pauser, who);
        VM.expectRevert(abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, ROTATOR, admin));
        rotator.grantRole(rotatorRole, who);
        VM.expectRevert(abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, ROTATOR, admin));
        rotator.setLimits(8, 0);
        VM.stopPrank();
    }

    /// @notice A key governance granted directly (not managed) cannot be revoked by the ROTATOR.
    function testFuzz_unmanagedKeyUntouchable(address key) public {
        VM.assume(key != address(0));
        bytes32 relayer = router.RELAYER_ROLE();
        VM.prank(GOVERNANCE);
        router.grantRole(relayer, key);
        VM.prank(ROTATOR);
        VM.expectRevert(abi.encodeWithSelector(RelayerKeyRotator.RelayerKeyRotatorNotManaged.selector, key));
        rotator.revokeKey(key, true);
        assertTrue(router.hasRole(router.RELAYER_ROLE(), key), "unmanaged key still live");
    }

    /// @notice Revocation is never rate limited, and refuses to leave no managed key live unless asked.
    function test_revokeAtOnceButNotTheLastUnlessAsked() public {
        VM.startPrank(ROTATOR);
        rotator.addKey(address(0x3001));
        VM.warp(block.timestamp + 3600);
        rotator.addKey(address(0x3002));
        rotator.revokeKey(address(0x3001), false); // same block as the addition: no interval
        VM.expectRevert(abi.encodeWithSelector(RelayerKeyRotator.RelayerKeyRotatorLastKey.selector, address(0x3002)));
        rotator.revokeKey(address(0x3002), false);
        rotator.revokeKey(address(0x3002), true);
        VM.stopPrank();
        assertEq(rotator.liveKeys().length, 0, "none live");
        assertTrue(!router.hasRole(router.RELAYER_ROLE(), address(0x3002)), "revoked");
    }

    /// @notice Once governance takes the router role back, the rotator can neither add nor revoke.
    function test_powerTakenBack() public {
        VM.prank(ROTATOR);
        rotator.addKey(address(0x4001));
        bytes32 admin = router.DEFAULT_ADMIN_ROLE();
        VM.prank(GOVERNANCE);
        router.revokeRole(admin, address(rotator));
        VM.warp(block.timestamp + 3600);
        VM.startPrank(ROTATOR);
        VM.expectRevert(abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, address(rotator), admin));
        rotator.addKey(address(0x4002));
        VM.expectRevert(abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, address(rotator), admin));
        rotator.revokeKey(address(0x4001), true);
        VM.stopPrank();
        assertTrue(!rotator.hasRotationPower(), "power gone");
    }
}
