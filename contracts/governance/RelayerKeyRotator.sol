// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";

/// @notice The router's role constant the rotator manages (AutoPayLLM.RELAYER_ROLE).
interface IRelayerRoleSource {
    function RELAYER_ROLE() external view returns (bytes32);
}

/**
 * @title RelayerKeyRotator
 * @notice Rotation of the relayer's settlement keys in hours instead of days. Governance (the timelock) grants this
 * contract, once, the router's DEFAULT_ADMIN_ROLE; the holder of ROTATOR_ROLE (the relayer's rotator key, in an HSM
 * in production) may then, without a vote:
 *  - `addKey`: grant the router's RELAYER_ROLE to a new key, at most `maxKeys` keys managed here live at once and at
 *    most one addition per `minInterval`;
 *  - `revokeKey`: revoke RELAYER_ROLE from a key this contract manages, at once (never rate limited: the leaked-key
 *    drill). It refuses to leave no managed key live unless `allowNone` is set, so a slip of the operator cannot
 *    stop settlement; this is a safety rail, not a security boundary.
 *
 * Trade-off: OpenZeppelin's AccessControl lets only the admin of RELAYER_ROLE grant it, and AutoPayLLM (with no
 * contract-size headroom) exposes no `setRoleAdmin`, so the only way without touching the router is for this contract
 * to hold the router's DEFAULT_ADMIN_ROLE, i.e. every governance power of the router. What keeps it narrow is this
 * contract's code: it is not upgradeable, has no generic call, and only ever calls the router's
 * `grantRole(RELAYER_ROLE, key)` and `revokeRole(RELAYER_ROLE, key)`. A bug here is a bug with admin power; that is
 * why the code is this small.
 *
 * If the ROTATOR key leaks, its holder can: add a key of its own as relayer (one per `minInterval`, never more than
 * `maxKeys` live), and revoke the relayer's managed keys (settlement stops; receipts stay queued, nothing is lost).
 * It cannot: grant or revoke any other role, touch keys it does not manage, change `maxKeys` or `minInterval`, move
 * funds, or keep the power once governance takes it back. A relayer key it adds can only settle batches, each held
 * for the router's dispute window and bounded by every payer's allowance, deposit and daily cap, each model's daily
 * budget and price cap; the money goes to registered providers' payees, never to the relayer.
 *
 * Governance (DEFAULT_ADMIN_ROLE here, the timelock) keeps: revoking any relayer key (here or on the router
 * directly), setting `maxKeys` and `minInterval`, adopting a key the router already trusts into this contract's care,
 * granting or revoking ROTATOR_ROLE, and taking the power back by revoking this contract's role on the router; then
 * every add or revoke here reverts.
 */
contract RelayerKeyRotator is AccessControl {
    /// @notice May add and revoke managed relayer keys within the limits, and nothing else.
    bytes32 public constant ROTATOR_ROLE = keccak256("ROTATOR_ROLE");
    /// @notice Upper bound of `maxKeys`: keeps every loop over the managed keys bounded.
    uint256 public constant MAX_KEYS = 8;
    /// @notice Upper bound of `minInterval`.
    uint64 public constant MAX_INTERVAL = 30 days;

    /// @notice The router (AutoPayLLM) whose RELAYER_ROLE this contract manages.
    IAccessControl public immutable router;
    /// @notice The router's RELAYER_ROLE, read once.
    bytes32 public immutable relayerRole;

    /// @notice Most managed keys live at once.
    uint8 public maxKeys;
    /// @notice Least seconds between two additions.
    uint64 public minInterval;
    /// @notice When the last key was added (0: never).
    uint64 public lastAddedAt;

    address[] private _managed;

    /// @notice A key received RELAYER_ROLE through this contract (or was adopted by governance).
    event RelayerKeyAdded(address indexed key, address indexed by);
    /// @notice A managed key lost RELAYER_ROLE through this contract.
    event RelayerKeyRevoked(address indexed key, address indexed by);
    /// @notice A managed key lost RELAYER_ROLE elsewhere (governance, directly on the router) and was forgotten.
    event RelayerKeyForgotten(address indexed key);
    /// @notice Governance set the limits.
    event RotationLimitsSet(uint8 maxKeys, uint64 minInterval);

    error RelayerKeyRotatorZeroAddress();
    error RelayerKeyRotatorInvalidKey(address key);
    error RelayerKeyRotatorAlreadyRelayer(address key);
    error RelayerKeyRotatorNotManaged(address key);
    error RelayerKeyRotatorTooManyKeys(uint256 live, uint256 maxKeys);
    error RelayerKeyRotatorTooSoon(uint256 nextAt);
    error RelayerKeyRotatorLastKey(address key);
    error RelayerKeyRotatorInvalidLimits(uint256 maxKeys, uint256 minInterval);

    /**
     * @param router_ The AutoPayLLM router; this contract needs its DEFAULT_ADMIN_ROLE to act (granted separately).
     * @param admin Receives DEFAULT_ADMIN_ROLE here (the timelock in production).
     * @param rotator Receives ROTATOR_ROLE (zero: none yet; governance grants it later).
     * @param maxKeys_ Most managed keys live at once (1 to MAX_KEYS).
     * @param minInterval_ Least seconds between two additions (at most MAX_INTERVAL).
     */
    constructor(IAccessControl router_, address admin, address rotator, uint8 maxKeys_, uint64 minInterval_) {
        if (address(router_) == address(0) || admin == address(0)) revert RelayerKeyRotatorZeroAddress();
        router = router_;
        relayerRole = IRelayerRoleSource(address(router_)).RELAYER_ROLE();
        _setLimits(maxKeys_, minInterval_);
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        if (rotator != address(0)) _grantRole(ROTATOR_ROLE, rotator);
    }

    /**
     * @notice Grants the router's RELAYER_ROLE to `key` and manages it from now on.
     * Requirements: ROTATOR_ROLE; `key` non-zero, not this contract nor the router, without RELAYER_ROLE yet; at least
     * `minInterval` since the last addition; fewer than `maxKeys` managed keys live; this contract holds the router's
     * DEFAULT_ADMIN_ROLE (else the router reverts).
     * Emits RelayerKeyAdded (and RelayerKeyForgotten for managed keys revoked elsewhere).
     */
    function addKey(address key) external onlyRole(ROTATOR_ROLE) {
        _addKey(key);
    }

    /**
     * @notice Revokes the router's RELAYER_ROLE from managed `key` at once (never rate limited).
     * @param allowNone Set to revoke even when no other managed key stays live (settlement stops until a key is added).
     * Requirements: ROTATOR_ROLE or DEFAULT_ADMIN_ROLE; `key` managed here; another managed key stays live unless
     * `allowNone`; this contract holds the router's DEFAULT_ADMIN_ROLE.
     * Emits RelayerKeyRevoked.
     */
    function revokeKey(address key, bool allowNone) external {
        if (!hasRole(ROTATOR_ROLE, msg.sender) && !hasRole(DEFAULT_ADMIN_ROLE, msg.sender)) {
            revert AccessControlUnauthorizedAccount(msg.sender, ROTATOR_ROLE);
        }
        _revokeKey(key, allowNone);
    }

    /**
     * @notice Takes a key the router already trusts (e.g. the relayer granted at deployment) into this contract's
     * care, so the rotator may later revoke it. Does not count as an addition (no interval).
     * Requirements: DEFAULT_ADMIN_ROLE; `key` holds RELAYER_ROLE and is not managed yet; fewer than `maxKeys` managed
     * keys live.
     * Emits RelayerKeyAdded.
     */
    function adoptKey(address key) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (!router.hasRole(relayerRole, key)) revert RelayerKeyRotatorInvalidKey(key);
        if (_indexOf(key) != type(uint256).max) revert RelayerKeyRotatorAlreadyRelayer(key);
        uint256 live = _prune();
        if (live >= maxKeys) revert RelayerKeyRotatorTooManyKeys(live + 1, maxKeys);
        _managed.push(key);
        emit RelayerKeyAdded(key, msg.sender);
    }

    /**
     * @notice Sets the most managed keys live at once and the least seconds between two additions.
     * Requirements: DEFAULT_ADMIN_ROLE; 1 <= `maxKeys_` <= MAX_KEYS; `minInterval_` <= MAX_INTERVAL. Keys already
     * live above a lowered `maxKeys_` stay (revoke them); no addition until they are fewer.
     * Emits RotationLimitsSet.
     */
    function setLimits(uint8 maxKeys_, uint64 minInterval_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setLimits(maxKeys_, minInterval_);
    }

    /// @notice The managed keys that hold RELAYER_ROLE on the router now.
    function liveKeys() external view returns (address[] memory keys) {
        uint256 length = _managed.length;
        address[] memory buffer = new address[](length);
        uint256 count;
        for (uint256 i; i < length; ++i) {
            if (router.hasRole(relayerRole, _managed[i])) buffer[count++] = _managed[i];
        }
        keys = new address[](count);
        for (uint256 i; i < count; ++i) keys[i] = buffer[i];
    }

    /// @notice Whether `key` is managed here (added or adopted, not revoked or forgotten since).
    function isManaged(address key) external view returns (bool) {
        return _indexOf(key) != type(uint256).max;
    }

    /// @notice Whether this contract holds the router's DEFAULT_ADMIN_ROLE, i.e. can act at all.
    function hasRotationPower() external view returns (bool) {
        return router.hasRole(DEFAULT_ADMIN_ROLE, address(this));
    }

    /// @notice When the next addition is allowed (unix seconds; 0: now).
    function nextAddAt() public view returns (uint256) {
        return lastAddedAt == 0 ? 0 : uint256(lastAddedAt) + minInterval;
    }

    function _addKey(address key) internal {
        if (key == address(0) || key == address(this) || key == address(router)) {
            revert RelayerKeyRotatorInvalidKey(key);
        }
        if (router.hasRole(relayerRole, key)) revert RelayerKeyRotatorAlreadyRelayer(key);
        uint256 next = nextAddAt();
        if (block.timestamp < next) revert RelayerKeyRotatorTooSoon(next);
        uint256 live = _prune();
        if (live >= maxKeys) revert RelayerKeyRotatorTooManyKeys(live + 1, maxKeys);
        lastAddedAt = uint64(block.timestamp);
        _managed.push(key);
        emit RelayerKeyAdded(key, msg.sender);
        router.grantRole(relayerRole, key);
    }

    function _revokeKey(address key, bool allowNone) internal {
        uint256 index = _indexOf(key);
        if (index == type(uint256).max) revert RelayerKeyRotatorNotManaged(key);
        _removeAt(index);
        if (!allowNone && _prune() == 0) revert RelayerKeyRotatorLastKey(key);
        emit RelayerKeyRevoked(key, msg.sender);
        router.revokeRole(relayerRole, key);
    }

    function _setLimits(uint8 maxKeys_, uint64 minInterval_) internal {
        if (maxKeys_ == 0 || maxKeys_ > MAX_KEYS || minInterval_ > MAX_INTERVAL) {
            revert RelayerKeyRotatorInvalidLimits(maxKeys_, minInterval_);
        }
        maxKeys = maxKeys_;
        minInterval = minInterval_;
        emit RotationLimitsSet(maxKeys_, minInterval_);
    }

    /// @dev Forgets managed keys that lost RELAYER_ROLE elsewhere; returns how many managed keys are live.
    function _prune() internal returns (uint256 live) {
        uint256 i;
        while (i < _managed.length) {
            address key = _managed[i];
            if (router.hasRole(relayerRole, key)) {
                ++i;
            } else {
                _removeAt(i);
                emit RelayerKeyForgotten(key);
            }
        }
        return _managed.length;
    }

    function _removeAt(uint256 index) internal {
        _managed[index] = _managed[_managed.length - 1];
        _managed.pop();
    }

    function _indexOf(address key) internal view returns (uint256) {
        uint256 length = _managed.length;
        for (uint256 i; i < length; ++i) {
            if (_managed[i] == key) return i;
        }
        return type(uint256).max;
    }
}
