// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// @title Hashing
/// @notice EIP-712 struct hashes of the Hybridex messages (SPEC §3), written in assembly so the
///         settlement loop hashes an order straight from its packed calldata form.
library Hashing {
    // Inline assembly sees narrow types (address, uint64) with possibly dirty high bits: every
    // such word is masked before it is hashed.
    /// @dev keccak256("Order(address trader,address baseToken,address quoteToken,uint8 side,uint256 price,uint256 amount,uint8 timeInForce,uint64 nonce,uint64 expiry,uint16 maxFeeBps)")
    bytes32 internal constant ORDER_TYPEHASH = 0xf495483108357a3262ea53bbc92a4169d742391ac1adb6860806e3a6cfd77edb;
    /// @dev keccak256("Cancel(address trader,bytes32 orderHash)")
    bytes32 internal constant CANCEL_TYPEHASH = 0xb14665440f5956aa2a4230c96f9640c9c4513b30b78c3f3a7ee6c66cb5cc0752;
    /// @dev keccak256("CancelAll(address trader,address baseToken,address quoteToken,uint64 nonceBelow)")
    bytes32 internal constant CANCEL_ALL_TYPEHASH = 0x055b3895ac99cdcf1d7c1f286c8dea4749a36d992fbf2e8bad1393120356ffc5;
    /// @dev keccak256("Withdrawal(address trader,address token,uint256 amount,uint64 nonce,uint64 expiry)")
    bytes32 internal constant WITHDRAWAL_TYPEHASH = 0xd929c1a94927ed57339b7ea5bf147ef31dbdbd6fe873f8fbe1b436a959c6fd03;

    /// @notice Struct hash of an order whose small fields come packed in `meta`
    ///         (nonce [0,64), expiry [64,128), side [128,136), timeInForce [136,144),
    ///         maxFeeBps [200,216)).
    function orderStructHash(address trader, address baseToken, address quoteToken, uint256 price, uint256 amount, uint256 meta)
        internal
        pure
        returns (bytes32 h)
    {
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, 0xf495483108357a3262ea53bbc92a4169d742391ac1adb6860806e3a6cfd77edb)
            mstore(add(m, 0x20), and(trader, 0xffffffffffffffffffffffffffffffffffffffff))
            mstore(add(m, 0x40), and(baseToken, 0xffffffffffffffffffffffffffffffffffffffff))
            mstore(add(m, 0x60), and(quoteToken, 0xffffffffffffffffffffffffffffffffffffffff))
            mstore(add(m, 0x80), and(shr(128, meta), 0xff))
            mstore(add(m, 0xa0), price)
            mstore(add(m, 0xc0), amount)
            mstore(add(m, 0xe0), and(shr(136, meta), 0xff))
            mstore(add(m, 0x100), and(meta, 0xffffffffffffffff))
            mstore(add(m, 0x120), and(shr(64, meta), 0xffffffffffffffff))
            mstore(add(m, 0x140), and(shr(200, meta), 0xffff))
            h := keccak256(m, 0x160)
        }
    }

    /// @notice Struct hash of `Cancel(trader, orderHash)`.
    function cancelStructHash(address trader, bytes32 orderHash) internal pure returns (bytes32 h) {
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, 0xb14665440f5956aa2a4230c96f9640c9c4513b30b78c3f3a7ee6c66cb5cc0752)
            mstore(add(m, 0x20), and(trader, 0xffffffffffffffffffffffffffffffffffffffff))
            mstore(add(m, 0x40), orderHash)
            h := keccak256(m, 0x60)
        }
    }

    /// @notice Struct hash of `CancelAll(trader, baseToken, quoteToken, nonceBelow)`.
    function cancelAllStructHash(address trader, address baseToken, address quoteToken, uint64 nonceBelow)
        internal
        pure
        returns (bytes32 h)
    {
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, 0x055b3895ac99cdcf1d7c1f286c8dea4749a36d992fbf2e8bad1393120356ffc5)
            mstore(add(m, 0x20), and(trader, 0xffffffffffffffffffffffffffffffffffffffff))
            mstore(add(m, 0x40), and(baseToken, 0xffffffffffffffffffffffffffffffffffffffff))
            mstore(add(m, 0x60), and(quoteToken, 0xffffffffffffffffffffffffffffffffffffffff))
            mstore(add(m, 0x80), and(nonceBelow, 0xffffffffffffffff))
            h := keccak256(m, 0xa0)
        }
    }

    /// @notice Struct hash of `Withdrawal(trader, token, amount, nonce, expiry)`.
    function withdrawalStructHash(address trader, address token, uint256 amount, uint64 nonce, uint64 expiry)
        internal
        pure
        returns (bytes32 h)
    {
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, 0xd929c1a94927ed57339b7ea5bf147ef31dbdbd6fe873f8fbe1b436a959c6fd03)
            mstore(add(m, 0x20), and(trader, 0xffffffffffffffffffffffffffffffffffffffff))
            mstore(add(m, 0x40), and(token, 0xffffffffffffffffffffffffffffffffffffffff))
            mstore(add(m, 0x60), amount)
            mstore(add(m, 0x80), and(nonce, 0xffffffffffffffff))
            mstore(add(m, 0xa0), and(expiry, 0xffffffffffffffff))
            h := keccak256(m, 0xc0)
        }
    }
}
