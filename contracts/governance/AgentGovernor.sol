// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {Governor} from "@openzeppelin/contracts/governance/Governor.sol";
import {GovernorCountingSimple} from "@openzeppelin/contracts/governance/extensions/GovernorCountingSimple.sol";
import {GovernorSettings} from "@openzeppelin/contracts/governance/extensions/GovernorSettings.sol";
import {GovernorStorage} from "@openzeppelin/contracts/governance/extensions/GovernorStorage.sol";
import {GovernorTimelockControl} from "@openzeppelin/contracts/governance/extensions/GovernorTimelockControl.sol";
import {GovernorVotes} from "@openzeppelin/contracts/governance/extensions/GovernorVotes.sol";
import {
    GovernorVotesQuorumFraction
} from "@openzeppelin/contracts/governance/extensions/GovernorVotesQuorumFraction.sol";
import {TimelockController} from "@openzeppelin/contracts/governance/TimelockController.sol";
import {IVotes} from "@openzeppelin/contracts/governance/utils/IVotes.sol";

import {IDisputeWindow} from "./IDisputeWindow.sol";

/**
 * @title AgentGovernor
 * @notice Token-vote governance of the billing suite: AGPT holders (who delegated) propose and vote on changes to
 * `AutoPayLLM` (model budgets and price caps, the dispute window and bond, providers, roles); a successful proposal
 * waits in the timelock, which holds every admin power, then anyone may execute it through this contract.
 *
 * OpenZeppelin Governor 5 with GovernorSettings, GovernorCountingSimple (against/for/abstain; quorum counts for and
 * abstain), GovernorVotes, GovernorVotesQuorumFraction (percent of total supply), GovernorTimelockControl and
 * GovernorStorage (proposal actions kept on-chain, so `queue(id)` and `execute(id)` need only the proposal id, and
 * clients list proposals without indexing events).
 *
 * Clock: the token's (ERC-6372). AGPT counts in block numbers, so voting delay and period are in blocks. On Arbitrum
 * `block.number` is the L1 (Ethereum) block number, about 12 s per block; on Polygon PoS blocks come about every
 * 2 s. The timelock delay is in seconds.
 *
 * Invariant, checked at deployment and after every executed proposal: the timelock delay is strictly longer than the
 * settlement contract's dispute window plus its sequencer grace period (the longest a window lasts once an L2
 * sequencer outage that overlapped it is over). A governance change therefore always takes effect after the dispute
 * window of every batch settled before it was queued has closed: users never see rules change under an open window.
 * A proposal that would break the invariant (a longer window, a shorter delay) reverts on execution; raise the delay
 * first, or in the same proposal.
 *
 * @dev The timelock must grant this contract the proposer, canceller and executor roles and nobody else: with an
 * open executor role, operations could be executed on the timelock directly, bypassing the invariant check.
 */
contract AgentGovernor is
    Governor,
    GovernorSettings,
    GovernorCountingSimple,
    GovernorStorage,
    GovernorVotes,
    GovernorVotesQuorumFraction,
    GovernorTimelockControl
{
    /// @notice The settlement contract (`AutoPayLLM`) whose dispute window the timelock delay must exceed.
    IDisputeWindow public immutable settlement;

    /// @dev A constructor address argument is zero.
    error AgentGovernorZeroAddress();
    /// @dev The timelock delay does not exceed the dispute window (both in seconds).
    error AgentGovernorDelayNotAboveDisputeWindow(uint256 timelockDelay, uint256 disputeWindow);

    /**
     * @param token The votes token (AGPT, ERC20Votes).
     * @param timelock_ The timelock that holds the suite's admin powers and executes proposals.
     * @param settlement_ The settlement contract whose dispute window the timelock delay must exceed.
     * @param votingDelay_ Clock units (blocks) between proposing and the start of voting (the snapshot).
     * @param votingPeriod_ Clock units (blocks) voting stays open.
     * @param proposalThreshold_ Votes (token units) a proposer needs, delegated before the previous block.
     * @param quorumPercent_ Percent of the total supply that must vote for or abstain (0 to 100).
     *
     * Requirements: non-zero addresses; a positive voting period; quorum at most 100; the timelock delay already
     * longer than the settlement contract's dispute window.
     */
    constructor(
        IVotes token,
        TimelockController timelock_,
        IDisputeWindow settlement_,
        uint48 votingDelay_,
        uint32 votingPeriod_,
        uint256 proposalThreshold_,
        uint256 quorumPercent_
    )
        Governor("AgentGovernor")
        GovernorSettings(votingDelay_, votingPeriod_, proposalThreshold_)
        GovernorVotes(token)
        GovernorVotesQuorumFraction(quorumPercent_)
        GovernorTimelockControl(timelock_)
    {
        if (address(token) == address(0) || address(timelock_) == address(0) || address(settlement_) == address(0)) {
            revert AgentGovernorZeroAddress();
        }
        settlement = settlement_;
        _checkDisputeWindow();
    }

    /// @inheritdoc Governor
    function state(uint256 proposalId)
        public
        view
        override(Governor, GovernorTimelockControl)
        returns (ProposalState)
    {
        return super.state(proposalId);
    }

    /// @inheritdoc Governor
    function proposalNeedsQueuing(uint256 proposalId)
        public
        view
        override(Governor, GovernorTimelockControl)
        returns (bool)
    {
        return super.proposalNeedsQueuing(proposalId);
    }

    /// @inheritdoc GovernorSettings
    function proposalThreshold() public view override(Governor, GovernorSettings) returns (uint256) {
        return super.proposalThreshold();
    }

    /**
     * @notice Whether the timelock delay is currently longer than the longest dispute window a batch settled now can
     * have once the sequencer is up (the window plus the sequencer grace period that an outage overlapping it adds),
     * with both values (seconds). Clients check a proposal against this before submitting it.
     */
    function disputeWindowCovered() public view returns (bool covered, uint256 timelockDelay, uint256 disputeWindow) {
        timelockDelay = TimelockController(payable(timelock())).getMinDelay();
        disputeWindow = uint256(settlement.disputeWindow()) + settlement.sequencerGracePeriod();
        covered = timelockDelay > disputeWindow;
    }

    function _propose(
        address[] memory targets,
        uint256[] memory values,
        bytes[] memory calldatas,
        string memory description,
        address proposer
    ) internal override(Governor, GovernorStorage) returns (uint256) {
        return super._propose(targets, values, calldatas, description, proposer);
    }

    function _queueOperations(
        uint256 proposalId,
        address[] memory targets,
        uint256[] memory values,
        bytes[] memory calldatas,
        bytes32 descriptionHash
    ) internal override(Governor, GovernorTimelockControl) returns (uint48) {
        return super._queueOperations(proposalId, targets, values, calldatas, descriptionHash);
    }

    /// @dev Runs the proposal through the timelock, then re-checks the dispute-window invariant.
    function _executeOperations(
        uint256 proposalId,
        address[] memory targets,
        uint256[] memory values,
        bytes[] memory calldatas,
        bytes32 descriptionHash
    ) internal override(Governor, GovernorTimelockControl) {
        super._executeOperations(proposalId, targets, values, calldatas, descriptionHash);
        _checkDisputeWindow();
    }

    function _cancel(
        address[] memory targets,
        uint256[] memory values,
        bytes[] memory calldatas,
        bytes32 descriptionHash
    ) internal override(Governor, GovernorTimelockControl) returns (uint256) {
        return super._cancel(targets, values, calldatas, descriptionHash);
    }

    function _executor() internal view override(Governor, GovernorTimelockControl) returns (address) {
        return super._executor();
    }

    function _checkDisputeWindow() internal view {
        (bool covered, uint256 timelockDelay, uint256 disputeWindow) = disputeWindowCovered();
        if (!covered) revert AgentGovernorDelayNotAboveDisputeWindow(timelockDelay, disputeWindow);
    }
}
