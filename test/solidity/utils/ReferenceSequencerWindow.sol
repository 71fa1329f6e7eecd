// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/**
 * @notice Reference for SequencerWindow.closesAt, written from the rule rather than from the walk: the window
 * `[settledAt, releaseAt)` closes at the first `t >= releaseAt` at which the sequencer is up and no outage touches
 * `[max(settledAt, t - grace), t]`. Only `releaseAt` and the ends of outages plus `grace` can be that first `t`, so
 * each of them is checked against the whole history.
 * @dev `starts[i]` is when status `down[i]` began (non-decreasing); the first status holds from before settledAt.
 */
library ReferenceSequencerWindow {
    function closesAt(bool[] memory down, uint256[] memory starts, uint256 grace, uint256 settledAt, uint256 releaseAt)
        internal
        pure
        returns (uint256 best)
    {
        best = type(uint256).max;
        if (_clear(down, starts, grace, settledAt, releaseAt)) return releaseAt;
        for (uint256 i = 0; i < starts.length; i++) {
            uint256 t = starts[i] + grace;
            if (t >= releaseAt && t < best && _clear(down, starts, grace, settledAt, t)) best = t;
        }
    }

    /// @dev The sequencer is up at `t` and no outage touches [max(settledAt, t - grace), t].
    function _clear(bool[] memory down, uint256[] memory starts, uint256 grace, uint256 settledAt, uint256 t)
        private
        pure
        returns (bool)
    {
        uint256 from = t > grace ? t - grace : 0;
        if (from < settledAt) from = settledAt;
        for (uint256 j = 0; j < starts.length; j++) {
            if (!down[j]) continue;
            uint256 end = j + 1 < starts.length ? starts[j + 1] : type(uint256).max;
            // Outage [starts[j], end) touches [from, t]?
            if (starts[j] <= t && end > from) return false;
        }
        return true;
    }
}
