// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title EvilToken
/// @notice ERC-20 with switchable misbehaviour, for tests only: a fee on transfer, a `false`
///         return instead of a revert, and a re-entrant call during `transferFrom`/`transfer`.
contract EvilToken is ERC20 {
    /// @notice Fee in basis points burnt from every transfer (0 = a plain token).
    uint256 public feeBps;
    /// @notice When set, `transfer` and `transferFrom` return false and move nothing.
    bool public returnFalse;
    /// @notice When set, `transfer`/`transferFrom` first call `reenterTarget` with `reenterData`.
    address public reenterTarget;
    bytes public reenterData;

    constructor() ERC20("Evil", "EVIL") {}

    /// @notice Mints `amount` to `to` (anyone may mint: test token).
    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    /// @notice Sets the fee burnt on every transfer.
    function setFeeBps(uint256 bps) external {
        feeBps = bps;
    }

    /// @notice Makes transfers return false.
    function setReturnFalse(bool value) external {
        returnFalse = value;
    }

    /// @notice Makes transfers call `target` with `data` first (re-entrancy probe).
    function setReenter(address target, bytes calldata data) external {
        reenterTarget = target;
        reenterData = data;
    }

    /// @inheritdoc ERC20
    function transfer(address to, uint256 value) public override returns (bool) {
        if (returnFalse) return false;
        _maybeReenter();
        return super.transfer(to, value);
    }

    /// @inheritdoc ERC20
    function transferFrom(address from, address to, uint256 value) public override returns (bool) {
        if (returnFalse) return false;
        _maybeReenter();
        return super.transferFrom(from, to, value);
    }

    function _maybeReenter() private {
        address target = reenterTarget;
        if (target == address(0)) return;
        (bool ok, bytes memory ret) = target.call(reenterData);
        if (!ok) {
            assembly ("memory-safe") {
                revert(add(ret, 0x20), mload(ret))
            }
        }
    }

    function _update(address from, address to, uint256 value) internal override {
        uint256 fee = from == address(0) || to == address(0) ? 0 : (value * feeBps) / 10_000;
        if (fee != 0) super._update(from, address(0), fee);
        super._update(from, to, value - fee);
    }
}
