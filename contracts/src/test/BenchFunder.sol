// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

import {IExchange} from "../interfaces/IExchange.sol";

/// @title BenchFunder
/// @notice Test/benchmark helper: deposits the same amount for many traders in one transaction
///         (through `Exchange.depositFor`), from tokens minted to this contract beforehand.
contract BenchFunder {
    using SafeERC20 for IERC20;

    /// @notice Credits `amount` of `token` to every trader of `traders` on `exchange`.
    function depositForAll(IExchange exchange, IERC20 token, address[] calldata traders, uint256 amount) external {
        token.forceApprove(address(exchange), amount * traders.length);
        for (uint256 i = 0; i < traders.length; ++i) {
            exchange.depositFor(traders[i], address(token), amount);
        }
    }
}
