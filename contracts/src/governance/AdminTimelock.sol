// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {TimelockController} from "@openzeppelin/contracts/governance/TimelockController.sol";

/// @title AdminTimelock
/// @notice The Exchange's DEFAULT_ADMIN_ROLE holder in production: every admin action (role
///         grants, fee recipient, pause, exit delay) is scheduled in public (`CallScheduled`)
///         and can run only `minDelay` seconds later, so traders see it coming and can exit.
/// @dev OpenZeppelin's TimelockController without an extra admin: the timelock administers
///      itself, so changing its delay or its proposers is a timelocked operation too.
contract AdminTimelock is TimelockController {
    /// @param minDelay Seconds between scheduling an operation and the earliest execution.
    /// @param proposers Who may schedule and cancel operations (the admin multisig).
    /// @param executors Who may execute a ready operation (the admin multisig).
    constructor(uint256 minDelay, address[] memory proposers, address[] memory executors)
        TimelockController(minDelay, proposers, executors, address(0))
    {}
}
