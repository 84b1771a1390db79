// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// @title IExchange
/// @notice Custody and batched settlement of EIP-712 signed orders for the Hybridex order book.
/// @dev Every error carries the context an operator needs to act on it; the settlement worker
///      bisects a reverted batch by the fill/order index or the trader an error names.
///      Calldata layout of `settleBatch` (packed words) is described in docs/contract.md.
interface IExchange {
    // ------------------------------------------------------------------------------------------
    // Signed messages (SPEC §3) — the canonical field layout, used by the hashing views and by
    // `cancelOrder`. Settlement uses the packed forms below.
    // ------------------------------------------------------------------------------------------

    /// @notice A limit order as the trader signs it.
    struct Order {
        address trader;
        address baseToken;
        address quoteToken;
        uint8 side; // 0 buy, 1 sell
        uint256 price; // quote base units per base base-unit × 1e18
        uint256 amount; // base units
        uint8 timeInForce; // 0 GTC, 1 IOC, 2 FOK, 3 POST_ONLY (not enforced on chain)
        uint64 nonce;
        uint64 expiry; // unix seconds, 0 = never; settles until expiry + EXPIRY_GRACE
        uint16 maxFeeBps; // the most the trader pays on any fill, in bps of what it receives
    }

    /// @notice A trader's signed cancellation of one order (by its EIP-712 digest).
    struct Cancel {
        address trader;
        bytes32 orderHash;
    }

    /// @notice A trader's signed cancellation of every order below `nonceBelow` in one market
    ///         (or in every market when both tokens are the zero address).
    struct CancelAll {
        address trader;
        address baseToken;
        address quoteToken;
        uint64 nonceBelow;
    }

    /// @notice A trader's signed withdrawal request, submitted by the operator.
    struct Withdrawal {
        address trader;
        address token;
        uint256 amount;
        uint64 nonce;
        uint64 expiry; // unix seconds; the withdrawal is refused after it
    }

    // ------------------------------------------------------------------------------------------
    // Packed settlement calldata
    // ------------------------------------------------------------------------------------------

    /// @notice An order (or, in `Batch.cancels`, the preimage of a cancelled order) in packed form.
    /// @dev `meta` bits: [0,64) nonce · [64,128) expiry · [128,136) side · [136,144) timeInForce ·
    ///      [144,152) v · [152,168) trader index · [168,184) base token index ·
    ///      [184,200) quote token index · [200,216) maxFeeBps · bit 216 closed (in
    ///      `Batch.orders` only, not signed: the engine closed the order after these fills, so
    ///      it is committed unfillable instead of keeping its remainder). (r, s, v) is the order's signature in `Batch.orders`
    ///      and the trader's `Cancel` signature in `Batch.cancels`.
    struct PackedOrder {
        uint256 price;
        uint256 amount;
        uint256 meta;
        bytes32 r;
        bytes32 s;
    }

    /// @notice One match of a maker order with a taker order, at the maker's price.
    /// @dev `packed` bits: [0,16) maker order index · [16,32) taker order index ·
    ///      [32,144) maker fee · [144,256) taker fee. Fees are in the asset each side receives.
    struct Fill {
        uint256 amount;
        uint256 packed;
    }

    /// @notice A signed `CancelAll` in packed form.
    /// @dev `meta` bits: [0,64) nonceBelow · [144,152) v · [152,168) trader index ·
    ///      [168,184) base token index · [184,200) quote token index (index 0xffff = zero address).
    struct PackedCancelAll {
        uint256 meta;
        bytes32 r;
        bytes32 s;
    }

    /// @notice An order the engine closed itself (IOC / FOK remainder, self-trade prevention,
    ///         expiry, freeze) that no fill of the batch uses, committed unfillable.
    /// @dev `meta` bits: [0,64) the order's nonce · [152,168) trader index. Closing is only ever
    ///      protective: it consumes the nonce and clears any partial amount under `orderHash`,
    ///      which the operator could equally achieve by never matching the order.
    struct Kill {
        bytes32 orderHash;
        uint256 meta;
    }

    /// @notice Everything one `settleBatch` applies. `traders` and `tokens` are tables, strictly
    ///         ascending, that orders and cancels reference by index.
    struct Batch {
        address[] traders;
        address[] tokens;
        PackedOrder[] orders;
        Fill[] fills;
        PackedOrder[] cancels;
        PackedCancelAll[] cancelAlls;
        Kill[] kills;
    }

    /// @notice Why a fill was left out of its batch (`FillSkipped`): the order named cannot
    ///         settle on chain any more, so the rest of the batch settles without the fill.
    enum SkipReason {
        None,
        Cancelled, // the trader's on-chain `cancelOrder` is in effect
        NonceInvalidated, // below the trader's invalidation bar (signed, or on chain and in effect)
        Expired, // past expiry + EXPIRY_GRACE
        TraderExited, // the trader's exit took effect
        NotFillable, // filled whole, cancelled by a signed cancel, closed, or nonce taken
        Overfilled // the fill takes more than the order has left
    }

    // ------------------------------------------------------------------------------------------
    // Events (the indexer's API)
    // ------------------------------------------------------------------------------------------

    /// @notice `amount` of `token` was credited to `trader` (paid by `payer`, usually the trader).
    event Deposited(address indexed trader, address indexed token, uint256 amount, address payer);

    /// @notice The operator executed `trader`'s signed withdrawal `nonce`.
    event Withdrawn(address indexed trader, address indexed token, uint256 amount, uint64 nonce);

    /// @notice `trader` asked to exit; from `effectiveBlock` no settlement touches them and they
    ///         alone can withdraw with `exitWithdraw`.
    event ExitRequested(address indexed trader, uint256 effectiveBlock);

    /// @notice An exited `trader` withdrew their whole internal balance of `token`.
    event ExitWithdrawn(address indexed trader, address indexed token, uint256 amount);

    /// @notice Batch `batchId` was applied. `fillsHash` is keccak256 of the batch's fills exactly as
    ///         sent (`Fill[]` words: amount, packed), so the indexer can reconcile a batch against
    ///         the fills the settlement worker recorded, without a per-fill event (SPEC §8).
    event BatchSettled(
        uint256 indexed batchId,
        uint256 fillCount,
        uint256 orderCount,
        uint256 cancelCount,
        uint256 cancelAllCount,
        bytes32 fillsHash
    );

    /// @notice Fill `fillIndex` (its index in `Batch.fills`) of batch `batchId` was left out:
    ///         `orderHash`, its maker or taker, cannot settle for `reason` (a `SkipReason`).
    ///         The other fills of the batch settled; the operator undoes this one off chain.
    event FillSkipped(uint256 indexed batchId, uint256 fillIndex, bytes32 indexed orderHash, uint8 reason);

    /// @notice `trader` cancelled `orderHash` on chain; from `effectiveTime` (unix seconds,
    ///         `cancelDelay` after the request) no batch settles a fill of it. Fills matched
    ///         before then still settle.
    event OrderCancelRequested(address indexed trader, bytes32 indexed orderHash, uint256 effectiveTime);

    /// @notice `trader` invalidated on chain every order with a nonce below `below`, in every
    ///         market, from `effectiveTime` (unix seconds, `cancelDelay` after the request).
    event NonceInvalidationRequested(address indexed trader, uint64 below, uint256 effectiveTime);

    /// @notice `orderHash` of `trader` can no longer be settled.
    event OrderCancelled(address indexed trader, bytes32 indexed orderHash);

    /// @notice The engine closed `orderHash` itself and a batch committed it unfillable.
    event OrderClosed(address indexed trader, bytes32 indexed orderHash);

    /// @notice Orders of `trader` with a nonce below `below` in the market (baseToken, quoteToken)
    ///         — or in every market when both are zero — can no longer be settled.
    event NoncesInvalidated(address indexed trader, uint64 below, address baseToken, address quoteToken);

    /// @notice The admin set the exit delay (in blocks).
    event ExitDelaySet(uint256 exitDelay);

    /// @notice The admin set the address that receives the trading fees.
    event FeeRecipientSet(address indexed feeRecipient);

    // ------------------------------------------------------------------------------------------
    // Errors
    // ------------------------------------------------------------------------------------------

    /// @notice An amount that must be positive was zero.
    error ZeroAmount();
    /// @notice An address that must be set was zero.
    error ZeroAddress();
    /// @notice The token moved `received` instead of `expected` (fee-on-transfer tokens are refused).
    error TransferAmountMismatch(address token, uint256 expected, uint256 received);
    /// @notice `trader` holds `available` of `token`, less than the `required` amount.
    error InsufficientBalance(address trader, address token, uint256 available, uint256 required);
    /// @notice The batch id is not the last applied id + 1.
    error BatchIdMismatch(uint256 expected, uint256 got);
    /// @notice The trader table is not strictly ascending at `index`.
    error TradersNotSorted(uint256 index);
    /// @notice The token table is not strictly ascending at `index`.
    error TokensNotSorted(uint256 index);
    /// @notice A signature over `digest` was not made by `signer` (or is malformed / high-s).
    error InvalidSignature(address signer, bytes32 digest);
    /// @notice Two orders of one batch share a trader's nonce: the later one is not fillable.
    ///         (A dead order is skipped with `FillSkipped`; this guards the batch's own
    ///         consistency, which only the operator controls.)
    error OrderNotFillable(bytes32 orderHash);
    /// @notice The fills would take `filled` of an order for only `amount` (an order listed
    ///         twice in one batch; over-filling a listed order once is skipped instead).
    error OrderOverfilled(bytes32 orderHash, uint256 amount, uint256 filled);
    /// @notice The order at `orderIndex` is referenced by no fill.
    error UnusedOrder(uint256 orderIndex);
    /// @notice Maker and taker of fill `fillIndex` trade different markets.
    error MarketMismatch(uint256 fillIndex);
    /// @notice Maker and taker of fill `fillIndex` are not one buy and one sell.
    error SidesNotOpposite(uint256 fillIndex);
    /// @notice The maker's price is outside the taker's limit in fill `fillIndex`.
    error PricesDoNotCross(uint256 fillIndex, uint256 makerPrice, uint256 takerPrice);
    /// @notice `amount * price` is not a multiple of 1e18 in fill `fillIndex` (SPEC §2).
    error InexactQuote(uint256 fillIndex, uint256 amount, uint256 price);
    /// @notice A fee of fill `fillIndex` exceeds `maxFee`: the paying order's signed `maxFeeBps`
    ///         (at most MAX_FEE_BPS) of what it receives.
    error FeeTooHigh(uint256 fillIndex, uint256 fee, uint256 maxFee);
    /// @notice The withdrawal's signature expired at `expiry`; the block's time is `timestamp`.
    error WithdrawalExpired(address trader, uint64 nonce, uint64 expiry, uint256 timestamp);
    /// @notice Withdrawal nonce `nonce` of `trader` was already used.
    error WithdrawalNonceUsed(address trader, uint64 nonce);
    /// @notice `trader` already asked to exit (effective at `effectiveBlock`).
    error ExitAlreadyRequested(address trader, uint256 effectiveBlock);
    /// @notice `trader`'s exit is not effective yet (0 = never requested).
    error ExitNotReady(address trader, uint256 effectiveBlock, uint256 currentBlock);
    /// @notice `exitDelay` must lie within [min, max] blocks.
    error ExitDelayOutOfBounds(uint256 exitDelay, uint256 min, uint256 max);
    /// @notice `cancelDelay` must lie within [min, max] seconds.
    error CancelDelayOutOfBounds(uint256 cancelDelay, uint256 min, uint256 max);
    /// @notice The on-chain cancel of `orderHash` was already requested (effective at
    ///         `effectiveTime`); asking again would postpone it.
    error CancelAlreadyRequested(bytes32 orderHash, uint256 effectiveTime);
    /// @notice An on-chain invalidation up to `pendingBelow` is still waiting for its delay and
    ///         already covers `below`.
    error InvalidationAlreadyRequested(uint64 below, uint64 pendingBelow, uint256 effectiveTime);
    /// @notice Only the order's trader may cancel it on chain.
    error NotOrderTrader(address caller, address trader);

    // ------------------------------------------------------------------------------------------
    // Functions
    // ------------------------------------------------------------------------------------------

    /// @notice Pulls `amount` of `token` from the caller and credits the caller's balance.
    /// @dev Refuses fee-on-transfer tokens: the exchange must receive exactly `amount`.
    function deposit(address token, uint256 amount) external;

    /// @notice Pulls `amount` of `token` from the caller and credits `trader`'s balance.
    function depositFor(address trader, address token, uint256 amount) external;

    /// @notice Internal balance of `trader` in `token` (base units).
    function balanceOf(address trader, address token) external view returns (uint256);

    /// @notice Id of the last applied batch (0 before the first).
    function lastBatchId() external view returns (uint256);

    /// @notice Applies batch `batchId` (must be `lastBatchId() + 1`): fills, then signed cancels.
    ///         A fill of an order that can no longer settle (see `SkipReason`) is left out with
    ///         `FillSkipped`; every other fill settles.
    function settleBatch(uint256 batchId, Batch calldata batch) external;

    /// @notice Executes a trader-signed withdrawal, sending the tokens to the trader.
    function withdraw(Withdrawal calldata w, bytes calldata signature) external;

    /// @notice Starts the caller's exit: effective `exitDelay` blocks from now.
    function requestExit() external;

    /// @notice After the exit is effective, sends the caller their whole balance of `token`.
    function exitWithdraw(address token) external;

    /// @notice Cancels one of the caller's orders on chain, `cancelDelay` seconds from now:
    ///         fills matched before then still settle (the operator's engine stops matching the
    ///         order as soon as it sees `OrderCancelRequested`).
    function cancelOrder(Order calldata order) external;

    /// @notice Invalidates every order of the caller with a nonce below `below`, in every market,
    ///         `cancelDelay` seconds from now. A request made while an earlier one still waits
    ///         replaces it (the higher bar, the new time).
    function invalidateNonces(uint64 below) external;

    /// @notice Seconds between an on-chain cancel request and its effect (set at deployment).
    function cancelDelay() external view returns (uint256);

    /// @notice Unix time from which the on-chain cancel of `orderHash` is in effect (0 = none).
    function cancelEffectiveTime(bytes32 orderHash) external view returns (uint256);

    /// @notice `trader`'s on-chain invalidation bar still waiting for its delay (or already in
    ///         effect when `effectiveTime` has passed), as (below, effectiveTime); (0, 0) if none.
    function pendingNonceBar(address trader) external view returns (uint64 below, uint256 effectiveTime);

    /// @notice Base units of `orderHash` filled so far, or 0 if untouched, fully filled or dead
    ///         (see `orderState`).
    function filledAmount(bytes32 orderHash) external view returns (uint256);

    /// @notice Whether `trader`'s order nonce `nonce` has been consumed (order filled, partly
    ///         filled or cancelled).
    function isNonceUsed(address trader, uint64 nonce) external view returns (bool);

    /// @notice Whether `trader`'s withdrawal nonce `nonce` has been used.
    function isWithdrawalNonceUsed(address trader, uint64 nonce) external view returns (bool);

    /// @notice Invalidation bar of `trader` in (baseToken, quoteToken) in force now; zero
    ///         tokens = every market (including an on-chain invalidation whose delay has passed).
    function nonceBar(address trader, address baseToken, address quoteToken) external view returns (uint64);

    /// @notice Block from which `trader`'s exit is effective (0 = no exit requested).
    function exitBlock(address trader) external view returns (uint256);

    /// @notice EIP-712 digest of an order (its order hash).
    function hashOrder(Order calldata order) external view returns (bytes32);

    /// @notice EIP-712 digest of a `Cancel`.
    function hashCancel(Cancel calldata cancel) external view returns (bytes32);

    /// @notice EIP-712 digest of a `CancelAll`.
    function hashCancelAll(CancelAll calldata cancelAll) external view returns (bytes32);

    /// @notice EIP-712 digest of a `Withdrawal`.
    function hashWithdrawal(Withdrawal calldata w) external view returns (bytes32);

    /// @notice The EIP-712 domain separator.
    function domainSeparator() external view returns (bytes32);

    /// @notice Sets the exit delay in blocks, within [MIN_EXIT_DELAY, MAX_EXIT_DELAY] (admin).
    function setExitDelay(uint256 newExitDelay) external;

    /// @notice Sets the fee recipient (admin).
    function setFeeRecipient(address newFeeRecipient) external;

    /// @notice Stops deposits, settlement and operator withdrawals; never exits or cancels (admin).
    function pause() external;

    /// @notice Resumes after `pause` (admin).
    function unpause() external;
}
