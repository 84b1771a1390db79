// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {MessageHashUtils} from "@openzeppelin/contracts/utils/cryptography/MessageHashUtils.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

import {IExchange} from "./interfaces/IExchange.sol";
import {Hashing} from "./libraries/Hashing.sol";

/// @title Exchange
/// @notice Hybridex custody and batched settlement of EIP-712 signed orders (SPEC §6, §8).
/// @dev Storage design (docs/contract.md): one packed account word per trader holds the exit
///      block, flags and a 128-nonce window of the order-nonce bitmap, so a trader's first order
///      costs no fresh slot; orders filled whole only set a nonce bit, an order left partly filled
///      also keeps its filled amount under its hash. Balance changes are netted in memory per
///      (trader, token) and each slot is written once per batch.
contract Exchange is IExchange, EIP712, AccessControl, Pausable, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    /// @notice keccak256("OPERATOR_ROLE"): may settle batches and submit signed withdrawals.
    bytes32 public constant OPERATOR_ROLE = 0x97667070c54ef182b0f5858b034beac1b6f3089aa2d3188bb1e8929f4fa9b929;
    /// @notice Cap of every fee, in basis points of what the paying side receives; each order
    ///         also signs its own, lower or equal, `maxFeeBps`.
    uint256 public constant MAX_FEE_BPS = 100;
    /// @notice Seconds past an order's expiry during which its fills still settle: the engine
    ///         stops matching it at expiry, and a batch formed just before may be in flight.
    uint256 public constant EXPIRY_GRACE = 120;
    /// @notice Bounds of `exitDelay`, in blocks.
    uint256 public constant MIN_EXIT_DELAY = 10;
    uint256 public constant MAX_EXIT_DELAY = 201_600;
    /// @notice Bounds of `cancelDelay`, in seconds: above settlement latency, below a week.
    uint256 public constant MIN_CANCEL_DELAY = 60;
    uint256 public constant MAX_CANCEL_DELAY = 604_800;

    uint256 private constant BPS = 10_000;
    uint256 private constant PRICE_SCALE = 1e18;

    // Packed order meta (IExchange.PackedOrder.meta).
    uint256 private constant U8 = 0xff;
    uint256 private constant U16 = 0xffff;
    uint256 private constant U64 = 0xffffffffffffffff;
    uint256 private constant U112 = 0xffffffffffffffffffffffffffff;
    uint256 private constant SIDE_SHIFT = 128;
    uint256 private constant V_SHIFT = 144;
    uint256 private constant TRADER_SHIFT = 152;
    uint256 private constant BASE_SHIFT = 168;
    uint256 private constant QUOTE_SHIFT = 184;
    uint256 private constant EXPIRY_SHIFT = 64;
    uint256 private constant MAX_FEE_SHIFT = 200;
    uint256 private constant CLOSED = 1 << 216;
    uint256 private constant NO_TOKEN = 0xffff;

    // Account word: [0,128) nonce window bits · [128,185) window word (nonce >> 7) ·
    // [185,225) exit block · bit 253 has on-chain cancels · bit 254 has nonce bars · bit 255
    // registered (keeps the word non-zero). The two "has" flags keep every other trader's
    // settlement free of the lookups they guard.
    uint256 private constant WINDOW_BITS = (1 << 128) - 1;
    uint256 private constant WORD_SHIFT = 128;
    uint256 private constant WORD_MASK = (1 << 57) - 1;
    uint256 private constant EXIT_SHIFT = 185;
    uint256 private constant EXIT_MASK = (1 << 40) - 1;
    uint256 private constant HAS_CANCELS = 1 << 253;
    uint256 private constant HAS_BARS = 1 << 254;
    /// Account bits that send an order down the slow path of `_verifyOrders`.
    uint256 private constant SLOW_ACCOUNT = HAS_CANCELS | HAS_BARS | (EXIT_MASK << EXIT_SHIFT);
    uint256 private constant REGISTERED = 1 << 255;

    /// @inheritdoc IExchange
    uint256 public override lastBatchId;
    /// @notice Blocks between `requestExit` and the exit taking effect.
    uint256 public exitDelay;
    /// @notice Receives every trading fee (credited to its internal balance).
    address public feeRecipient;
    /// @inheritdoc IExchange
    uint256 public immutable override cancelDelay;

    mapping(address trader => mapping(address token => uint256)) private _balances;
    mapping(address trader => uint256) private _accounts;
    /// Order-nonce bitmap words (128 nonces each, key nonce >> 7) outside the account window.
    mapping(address trader => mapping(uint256 word => uint256)) private _nonceWords;
    /// Filled amount of orders left partly filled (0 once filled whole or cancelled).
    mapping(bytes32 orderHash => uint256) private _filled;
    mapping(address trader => mapping(uint256 word => uint256)) private _withdrawalNonceWords;
    /// keccak256(trader, baseToken, quoteToken) → invalidation bar; zero tokens = every market.
    mapping(bytes32 key => uint64) private _nonceBars;
    /// Unix time from which an on-chain `cancelOrder` is in effect (0 = never requested).
    mapping(bytes32 orderHash => uint256) private _cancelTimes;
    /// On-chain `invalidateNonces` waiting for (or past) its delay: [0,64) below · [64,128) time.
    mapping(address trader => uint256) private _pendingBars;

    /// @dev Working memory of one `settleBatch`.
    struct Ctx {
        bytes32 domainSeparator;
        uint256 tokenCount;
        uint256[] accounts; // per trader index
        uint256[] loaded; // account words as loaded, to write back only what changed
        uint256[] credits; // per trader index * tokenCount + token index
        uint256[] debits;
        uint256[] feeCredits; // per token index
        uint256[] orderHashes; // per order index
        uint256[] batchFilled; // per order index
        uint256[] room; // per order index: what is left to fill (0 = dead)
        uint256[] reasons; // per order index: SkipReason of a dead order
        uint256 batchId;
        uint256 skipped; // fills left out
    }

    /// @param admin Holder of DEFAULT_ADMIN_ROLE (roles, fee recipient, exit delay, pause).
    /// @param operator Holder of OPERATOR_ROLE (settlement, withdrawals).
    /// @param feeRecipient_ Receives the trading fees.
    /// @param exitDelay_ Blocks between `requestExit` and the exit taking effect.
    /// @param cancelDelay_ Seconds between an on-chain cancel request and its effect.
    constructor(address admin, address operator, address feeRecipient_, uint256 exitDelay_, uint256 cancelDelay_)
        EIP712("Hybridex", "1")
    {
        // Must name every role holder and the fee recipient.
        if (admin == address(0) || operator == address(0) || feeRecipient_ == address(0)) revert ZeroAddress();
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(OPERATOR_ROLE, operator);
        _setFeeRecipient(feeRecipient_);
        _setExitDelay(exitDelay_);
        // Must outlast settlement latency (else a trader could void fills already matched), and
        // leave traders a bounded wait.
        if (cancelDelay_ < MIN_CANCEL_DELAY || cancelDelay_ > MAX_CANCEL_DELAY) {
            revert CancelDelayOutOfBounds(cancelDelay_, MIN_CANCEL_DELAY, MAX_CANCEL_DELAY);
        }
        cancelDelay = cancelDelay_;
    }

    // ------------------------------------------------------------------------------------------
    // Custody
    // ------------------------------------------------------------------------------------------

    /// @inheritdoc IExchange
    function deposit(address token, uint256 amount) external override whenNotPaused nonReentrant {
        _deposit(msg.sender, token, amount);
    }

    /// @inheritdoc IExchange
    function depositFor(address trader, address token, uint256 amount) external override whenNotPaused nonReentrant {
        // Must credit a real address.
        if (trader == address(0)) revert ZeroAddress();
        _deposit(trader, token, amount);
    }

    /// @inheritdoc IExchange
    function balanceOf(address trader, address token) external view override returns (uint256) {
        return _balances[trader][token];
    }

    /// @inheritdoc IExchange
    function withdraw(Withdrawal calldata w, bytes calldata signature)
        external
        override
        onlyRole(OPERATOR_ROLE)
        whenNotPaused
        nonReentrant
    {
        // Must move something.
        if (w.amount == 0) revert ZeroAmount();
        bytes32 digest =
            _hashTypedDataV4(Hashing.withdrawalStructHash(w.trader, w.token, w.amount, w.nonce, w.expiry));
        (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecover(digest, signature);
        // Must carry the trader's own valid (low-s) signature.
        if (err != ECDSA.RecoverError.NoError || signer != w.trader) revert InvalidSignature(w.trader, digest);
        // Must be executed before the trader's signature expires.
        if (block.timestamp > w.expiry) revert WithdrawalExpired(w.trader, w.nonce, w.expiry, block.timestamp);
        uint256 wordIndex = w.nonce >> 8;
        uint256 bit = 1 << (w.nonce & 0xff);
        uint256 word = _withdrawalNonceWords[w.trader][wordIndex];
        // Must not replay a withdrawal.
        if (word & bit != 0) revert WithdrawalNonceUsed(w.trader, w.nonce);
        _withdrawalNonceWords[w.trader][wordIndex] = word | bit;
        uint256 balance = _balances[w.trader][w.token];
        // Must be covered by the trader's balance.
        if (balance < w.amount) revert InsufficientBalance(w.trader, w.token, balance, w.amount);
        unchecked {
            _balances[w.trader][w.token] = balance - w.amount;
        }
        IERC20(w.token).safeTransfer(w.trader, w.amount);
        emit Withdrawn(w.trader, w.token, w.amount, w.nonce);
    }

    // ------------------------------------------------------------------------------------------
    // Escape hatch (never paused)
    // ------------------------------------------------------------------------------------------

    /// @inheritdoc IExchange
    function requestExit() external override {
        uint256 account = _accounts[msg.sender];
        uint256 effective = (account >> EXIT_SHIFT) & EXIT_MASK;
        // Must not restart a running exit (that would postpone it).
        if (effective != 0) revert ExitAlreadyRequested(msg.sender, effective);
        effective = block.number + exitDelay;
        _accounts[msg.sender] = account | REGISTERED | (effective << EXIT_SHIFT);
        emit ExitRequested(msg.sender, effective);
    }

    /// @inheritdoc IExchange
    function exitWithdraw(address token) external override nonReentrant {
        uint256 effective = (_accounts[msg.sender] >> EXIT_SHIFT) & EXIT_MASK;
        // Must come after the exit took effect.
        if (effective == 0 || block.number < effective) revert ExitNotReady(msg.sender, effective, block.number);
        uint256 amount = _balances[msg.sender][token];
        // Must have something to withdraw.
        if (amount == 0) revert ZeroAmount();
        _balances[msg.sender][token] = 0;
        IERC20(token).safeTransfer(msg.sender, amount);
        emit ExitWithdrawn(msg.sender, token, amount);
    }

    // ------------------------------------------------------------------------------------------
    // On-chain cancels (never paused)
    // ------------------------------------------------------------------------------------------

    // Both take effect `cancelDelay` seconds after the request, like the exit: a fill matched
    // before then settles, so a trader cannot take back a trade by front-running its batch.

    /// @inheritdoc IExchange
    function cancelOrder(Order calldata order) external override {
        // Must be the order's own trader.
        if (msg.sender != order.trader) revert NotOrderTrader(msg.sender, order.trader);
        bytes32 orderHash = _hashOrder(order);
        uint256 effective = _cancelTimes[orderHash];
        // Must not restart a pending cancel (that would postpone it).
        if (effective != 0) revert CancelAlreadyRequested(orderHash, effective);
        effective = block.timestamp + cancelDelay;
        _cancelTimes[orderHash] = effective;
        _accounts[msg.sender] |= HAS_CANCELS | REGISTERED;
        emit OrderCancelRequested(msg.sender, orderHash, effective);
    }

    /// @inheritdoc IExchange
    function invalidateNonces(uint64 below) external override {
        uint256 pending = _pendingBars[msg.sender];
        uint64 pendingBelow = uint64(pending);
        uint256 pendingTime = pending >> 64;
        if (pendingTime != 0 && block.timestamp >= pendingTime) {
            // In effect already: it becomes the bar, the new request waits on its own.
            _raiseBar(msg.sender, address(0), address(0), pendingBelow);
        } else if (below <= pendingBelow) {
            // Must raise the bar: a lower request would only postpone the pending one.
            revert InvalidationAlreadyRequested(below, pendingBelow, pendingTime);
        }
        uint256 effective = block.timestamp + cancelDelay;
        _pendingBars[msg.sender] = uint256(below) | (effective << 64);
        _accounts[msg.sender] |= HAS_BARS | REGISTERED;
        emit NonceInvalidationRequested(msg.sender, below, effective);
    }

    // ------------------------------------------------------------------------------------------
    // Settlement
    // ------------------------------------------------------------------------------------------

    /// @inheritdoc IExchange
    function settleBatch(uint256 batchId, Batch calldata batch)
        external
        override
        onlyRole(OPERATOR_ROLE)
        whenNotPaused
        nonReentrant
    {
        // Must apply batches exactly once and in order.
        if (batchId != lastBatchId + 1) revert BatchIdMismatch(lastBatchId + 1, batchId);
        lastBatchId = batchId;

        address[] calldata traders = batch.traders;
        address[] calldata tokens = batch.tokens;
        PackedOrder[] calldata orders = batch.orders;
        Ctx memory ctx = _loadContext(traders, tokens, orders.length);
        ctx.batchId = batchId;
        _verifyOrders(traders, tokens, orders, ctx);
        _applyFills(batch.fills, orders, ctx);
        _updateOrders(traders, orders, ctx);
        if (batch.cancels.length != 0) _applyCancels(traders, tokens, batch.cancels, ctx);
        if (batch.cancelAlls.length != 0) _applyCancelAlls(traders, tokens, batch.cancelAlls, ctx);
        if (batch.kills.length != 0) _applyKills(traders, batch.kills, ctx);
        _writeBack(traders, tokens, ctx);
        emit BatchSettled(
            batchId,
            batch.fills.length,
            orders.length,
            batch.cancels.length,
            batch.cancelAlls.length,
            _fillsHash(batch.fills)
        );
    }

    /// @dev Checks the tables and loads every trader's account word.
    function _loadContext(address[] calldata traders, address[] calldata tokens, uint256 orderCount)
        private
        view
        returns (Ctx memory ctx)
    {
        uint256 traderCount = traders.length;
        uint256 tokenCount = tokens.length;
        for (uint256 i = 1; i < tokenCount; ++i) {
            // Must list each token once (ascending), so each balance slot is written once.
            if (tokens[i] <= tokens[i - 1]) revert TokensNotSorted(i);
        }
        ctx.domainSeparator = _domainSeparatorV4();
        ctx.tokenCount = tokenCount;
        ctx.accounts = new uint256[](traderCount);
        ctx.loaded = new uint256[](traderCount);
        ctx.credits = new uint256[](traderCount * tokenCount);
        ctx.debits = new uint256[](traderCount * tokenCount);
        ctx.feeCredits = new uint256[](tokenCount);
        ctx.orderHashes = new uint256[](orderCount);
        ctx.batchFilled = new uint256[](orderCount);
        ctx.room = new uint256[](orderCount);
        ctx.reasons = new uint256[](orderCount);
        uint256[] memory accounts = ctx.accounts;
        uint256[] memory loaded = ctx.loaded;
        address previous = address(0);
        for (uint256 i = 0; i < traderCount;) {
            address trader = traders[i];
            // Must list each trader once (ascending), so each account word is written once.
            if (trader <= previous) revert TradersNotSorted(i);
            previous = trader;
            uint256 account = _accounts[trader];
            _store(accounts, i, account);
            _store(loaded, i, account);
            unchecked {
                ++i;
            }
        }
    }

    /// @dev Hashes every order and checks its signature; finds what each order has left to
    ///      fill (its room), 0 with a `SkipReason` for an order that can no longer settle.
    ///      Bounds-checks every trader and token index, so later loops may index without checks.
    function _verifyOrders(
        address[] calldata traders,
        address[] calldata tokens,
        PackedOrder[] calldata orders,
        Ctx memory ctx
    ) private view {
        uint256 count = orders.length;
        bytes32 separator = ctx.domainSeparator;
        uint256[] memory orderHashes = ctx.orderHashes;
        for (uint256 i = 0; i < count;) {
            PackedOrder calldata o = orders[i];
            uint256 meta = o.meta;
            address trader = traders[(meta >> TRADER_SHIFT) & U16];
            address baseToken = tokens[(meta >> BASE_SHIFT) & U16];
            address quoteToken = tokens[(meta >> QUOTE_SHIFT) & U16];
            bytes32 orderHash = MessageHashUtils.toTypedDataHash(
                separator, Hashing.orderStructHash(trader, baseToken, quoteToken, o.price, o.amount, meta)
            );
            _checkSignature(orderHash, trader, meta, o.r, o.s);
            _store(orderHashes, i, uint256(orderHash));
            uint256 account = _load(ctx.accounts, (meta >> TRADER_SHIFT) & U16);
            // Fast path, the common case: no exit, bars or on-chain cancels, no expiry, fresh
            // nonce: the whole amount is left.
            if (
                account & SLOW_ACCOUNT == 0 && (meta >> EXPIRY_SHIFT) & U64 == 0
                    && !_isNonceUsed(trader, account, uint64(meta))
            ) {
                _store(ctx.room, i, o.amount);
            } else {
                _classify(ctx, i, account, trader, baseToken, quoteToken, meta, orderHash, o.amount);
            }
            unchecked {
                ++i;
            }
        }
    }

    /// @dev Slow path of `_verifyOrders`: the room of order `i`, or its `SkipReason`.
    function _classify(
        Ctx memory ctx,
        uint256 i,
        uint256 account,
        address trader,
        address baseToken,
        address quoteToken,
        uint256 meta,
        bytes32 orderHash,
        uint256 amount
    ) private view {
        uint256 reason = _deadReason(account, trader, baseToken, quoteToken, meta, orderHash);
        if (reason == 0) {
            uint256 room = _roomOf(trader, account, uint64(meta), amount, orderHash);
            if (room != 0) _store(ctx.room, i, room);
            else reason = uint256(SkipReason.NotFillable);
        }
        if (reason != 0) _store(ctx.reasons, i, reason);
    }

    /// @dev What is left of an order to fill (0 = nothing: filled whole, cancelled by a signed
    ///      cancel, closed, or its nonce taken by another order).
    function _roomOf(address trader, uint256 account, uint64 nonce, uint256 amount, bytes32 orderHash)
        private
        view
        returns (uint256)
    {
        if (!_isNonceUsed(trader, account, nonce)) return amount;
        // A used nonce: left partly filled before (a stored amount), or dead.
        uint256 filled = _filled[orderHash];
        return filled == 0 || filled >= amount ? 0 : amount - filled;
    }

    /// @dev Why an order can no longer settle, from what the chain holds (0 = it can).
    function _deadReason(
        uint256 account,
        address trader,
        address baseToken,
        address quoteToken,
        uint256 meta,
        bytes32 orderHash
    ) private view returns (uint256) {
        uint256 effective = (account >> EXIT_SHIFT) & EXIT_MASK;
        // Must not touch a trader whose exit took effect.
        if (effective != 0 && block.number >= effective) return uint256(SkipReason.TraderExited);
        // Must not be below the trader's invalidation bar (all markets or this market).
        if (account & HAS_BARS != 0 && uint64(meta) < _barOf(trader, baseToken, quoteToken)) {
            return uint256(SkipReason.NonceInvalidated);
        }
        uint256 expiry = (meta >> EXPIRY_SHIFT) & U64;
        // Must not settle an order past its expiry (plus the grace for batches in flight).
        if (expiry != 0 && block.timestamp > expiry + EXPIRY_GRACE) return uint256(SkipReason.Expired);
        if (account & HAS_CANCELS != 0) {
            uint256 cancelTime = _cancelTimes[orderHash];
            // Must not settle an order whose on-chain cancel is in effect.
            if (cancelTime != 0 && block.timestamp >= cancelTime) return uint256(SkipReason.Cancelled);
        }
        return 0;
    }

    /// @dev Checks every fill against its two orders and nets the balance changes in memory.
    ///      A fill that takes more than either order has room for is skipped (`FillSkipped`).
    function _applyFills(Fill[] calldata fills, PackedOrder[] calldata orders, Ctx memory ctx) private {
        uint256 count = fills.length;
        uint256[] memory room = ctx.room;
        uint256[] memory batchFilled = ctx.batchFilled;
        for (uint256 j = 0; j < count;) {
            uint256 amount = fills[j].amount;
            uint256 packed = fills[j].packed;
            // Must trade something.
            if (amount == 0) revert ZeroAmount();
            uint256 makerIndex = packed & U16;
            uint256 takerIndex = (packed >> 16) & U16;
            PackedOrder calldata maker = orders[makerIndex];
            PackedOrder calldata taker = orders[takerIndex];
            if (!_take(room, batchFilled, makerIndex, takerIndex, amount)) {
                _skip(ctx, j, _load(room, makerIndex) < amount ? makerIndex : takerIndex);
                unchecked {
                    ++j;
                }
                continue;
            }
            uint256 quoteAmount = _checkMatch(j, amount, maker, taker);
            uint256 makerFee = (packed >> 32) & U112;
            uint256 takerFee = packed >> 144;
            _settleSide(ctx, j, maker.meta, amount, quoteAmount, makerFee);
            _settleSide(ctx, j, taker.meta, amount, quoteAmount, takerFee);
            unchecked {
                ++j;
            }
        }
    }

    /// @dev Takes `amount` from the room of both orders and adds it to their batch fills, or
    ///      does nothing when either has too little room (the fill is then skipped). Indices
    ///      were bounds-checked by the caller's calldata reads of the two orders; a fill is at
    ///      most each order's room, so the sums cannot overflow.
    function _take(
        uint256[] memory room,
        uint256[] memory batchFilled,
        uint256 makerIndex,
        uint256 takerIndex,
        uint256 amount
    ) private pure returns (bool ok) {
        assembly ("memory-safe") {
            let makerRoom := add(add(room, 0x20), shl(5, makerIndex))
            let takerRoom := add(add(room, 0x20), shl(5, takerIndex))
            let m := mload(makerRoom)
            let t := mload(takerRoom)
            ok := iszero(or(gt(amount, m), gt(amount, t)))
            if ok {
                mstore(makerRoom, sub(m, amount))
                mstore(takerRoom, sub(t, amount))
                let makerFilled := add(add(batchFilled, 0x20), shl(5, makerIndex))
                let takerFilled := add(add(batchFilled, 0x20), shl(5, takerIndex))
                mstore(makerFilled, add(mload(makerFilled), amount))
                mstore(takerFilled, add(mload(takerFilled), amount))
            }
        }
    }

    /// @dev Leaves fill `j` out: `orderIndex`, one of its orders, is dead or has too little room.
    function _skip(Ctx memory ctx, uint256 j, uint256 orderIndex) private {
        uint256 reason = _load(ctx.reasons, orderIndex);
        if (reason == 0) reason = uint256(SkipReason.Overfilled);
        unchecked {
            ++ctx.skipped;
        }
        emit FillSkipped(ctx.batchId, j, bytes32(_load(ctx.orderHashes, orderIndex)), uint8(reason));
    }

    /// @dev Market, sides, price and exact quote of fill `j`; returns its quote amount.
    function _checkMatch(uint256 j, uint256 amount, PackedOrder calldata maker, PackedOrder calldata taker)
        private
        pure
        returns (uint256 quoteAmount)
    {
        uint256 makerMeta = maker.meta;
        uint256 takerMeta = taker.meta;
        // Must match orders of the same market (same base and quote token indices).
        if ((makerMeta ^ takerMeta) >> BASE_SHIFT & 0xffffffff != 0) revert MarketMismatch(j);
        uint256 takerSide = (takerMeta >> SIDE_SHIFT) & U8;
        // Must match one buy (0) with one sell (1).
        if (((makerMeta >> SIDE_SHIFT) & U8) + takerSide != 1) revert SidesNotOpposite(j);
        uint256 price = maker.price;
        uint256 limit = taker.price;
        // Must execute at the maker's price within the taker's limit.
        if (takerSide == 0 ? price > limit : price < limit) revert PricesDoNotCross(j, price, limit);
        uint256 product = amount * price;
        // Must have an exact quote amount (SPEC §2).
        if (product % PRICE_SCALE != 0) revert InexactQuote(j, amount, price);
        unchecked {
            quoteAmount = product / PRICE_SCALE;
        }
    }

    /// @dev One side of fill `j`: pays base (sell) or quote (buy), receives the other minus `fee`.
    ///      Indices were bounds-checked by `_verifyOrders`.
    function _settleSide(Ctx memory ctx, uint256 j, uint256 meta, uint256 amount, uint256 quoteAmount, uint256 fee)
        private
        pure
    {
        uint256 baseIndex = (meta >> BASE_SHIFT) & U16;
        uint256 quoteIndex = (meta >> QUOTE_SHIFT) & U16;
        (uint256 payIndex, uint256 paid, uint256 receiveIndex, uint256 received) = ((meta >> SIDE_SHIFT) & U8) == 0
            ? (quoteIndex, quoteAmount, baseIndex, amount)
            : (baseIndex, amount, quoteIndex, quoteAmount);
        uint256 maxBps = (meta >> MAX_FEE_SHIFT) & U16;
        if (maxBps > MAX_FEE_BPS) maxBps = MAX_FEE_BPS;
        // Must not charge more than the order signed for, nor more than the protocol cap.
        if (fee * BPS > received * maxBps) revert FeeTooHigh(j, fee, received * maxBps / BPS);
        unchecked {
            uint256 row = ((meta >> TRADER_SHIFT) & U16) * ctx.tokenCount;
            _addAt(ctx.debits, row + payIndex, paid);
            // fee <= received / 100 by the guard above
            _addAt(ctx.credits, row + receiveIndex, received - fee);
        }
        _addAt(ctx.feeCredits, receiveIndex, fee);
    }

    /// @dev Records each order's filled state: a nonce bit when filled whole, plus the amount
    ///      when left partly filled.
    function _updateOrders(address[] calldata traders, PackedOrder[] calldata orders, Ctx memory ctx) private {
        uint256 count = orders.length;
        uint256[] memory accounts = ctx.accounts;
        for (uint256 i = 0; i < count;) {
            uint256 batchFilled = _load(ctx.batchFilled, i);
            if (batchFilled == 0) {
                // Untouched: its fills were skipped (it stays as the chain had it).
                if (ctx.skipped != 0) {
                    unchecked {
                        ++i;
                    }
                    continue;
                }
                // Must not list an order that no fill uses (it would be marked consumed for nothing).
                revert UnusedOrder(i);
            }
            PackedOrder calldata o = orders[i];
            uint256 meta = o.meta;
            uint256 traderIndex = (meta >> TRADER_SHIFT) & U16;
            (uint256 account, bool used) = _useNonce(traders[traderIndex], _load(accounts, traderIndex), uint64(meta));
            _store(accounts, traderIndex, account);
            if (used || batchFilled != o.amount) {
                _recordFill(bytes32(_load(ctx.orderHashes, i)), used, batchFilled, o.amount, meta & CLOSED != 0);
            }
            unchecked {
                ++i;
            }
        }
    }

    /// @dev Slow path of `_updateOrders`: an order seen before, or left partly filled. A
    ///      `closed` order keeps no remainder: its nonce bit alone marks it dead.
    function _recordFill(bytes32 orderHash, bool used, uint256 batchFilled, uint256 amount, bool closed) private {
        uint256 previous = 0;
        if (used) {
            previous = _filled[orderHash];
            // Must be an open order: a used nonce without a partial amount is filled whole,
            // cancelled, or taken by another order of the trader.
            if (previous == 0) revert OrderNotFillable(orderHash);
        }
        uint256 filled = previous + batchFilled;
        // Must not fill more than the order's amount.
        if (filled > amount) revert OrderOverfilled(orderHash, amount, filled);
        if (filled < amount && !closed) _filled[orderHash] = filled;
        else if (previous != 0) delete _filled[orderHash];
    }

    /// @dev Applies the trader-signed `Cancel`s carried by the batch (after its fills).
    function _applyCancels(
        address[] calldata traders,
        address[] calldata tokens,
        PackedOrder[] calldata cancels,
        Ctx memory ctx
    ) private {
        uint256 count = cancels.length;
        for (uint256 i = 0; i < count; ++i) {
            PackedOrder calldata c = cancels[i];
            uint256 meta = c.meta;
            uint256 traderIndex = (meta >> TRADER_SHIFT) & U16;
            address trader = traders[traderIndex];
            bytes32 orderHash = _cancelledOrderHash(tokens, c, trader, ctx.domainSeparator);
            bytes32 digest =
                MessageHashUtils.toTypedDataHash(ctx.domainSeparator, Hashing.cancelStructHash(trader, orderHash));
            _checkSignature(digest, trader, meta, c.r, c.s);
            ctx.accounts[traderIndex] = _killOrder(trader, ctx.accounts[traderIndex], uint64(meta), orderHash);
            emit OrderCancelled(trader, orderHash);
        }
    }

    /// @dev Order hash of the preimage a `Cancel` carries.
    function _cancelledOrderHash(address[] calldata tokens, PackedOrder calldata c, address trader, bytes32 separator)
        private
        pure
        returns (bytes32)
    {
        uint256 meta = c.meta;
        address baseToken = tokens[(meta >> BASE_SHIFT) & U16];
        address quoteToken = tokens[(meta >> QUOTE_SHIFT) & U16];
        return MessageHashUtils.toTypedDataHash(
            separator, Hashing.orderStructHash(trader, baseToken, quoteToken, c.price, c.amount, meta)
        );
    }

    /// @dev Applies the trader-signed `CancelAll`s carried by the batch (after its fills).
    function _applyCancelAlls(
        address[] calldata traders,
        address[] calldata tokens,
        PackedCancelAll[] calldata cancelAlls,
        Ctx memory ctx
    ) private {
        uint256 count = cancelAlls.length;
        for (uint256 i = 0; i < count; ++i) {
            PackedCancelAll calldata c = cancelAlls[i];
            uint256 meta = c.meta;
            uint256 traderIndex = (meta >> TRADER_SHIFT) & U16;
            address trader = traders[traderIndex];
            address baseToken = _tokenOrZero(tokens, (meta >> BASE_SHIFT) & U16);
            address quoteToken = _tokenOrZero(tokens, (meta >> QUOTE_SHIFT) & U16);
            uint64 below = uint64(meta);
            bytes32 digest = MessageHashUtils.toTypedDataHash(
                ctx.domainSeparator, Hashing.cancelAllStructHash(trader, baseToken, quoteToken, below)
            );
            _checkSignature(digest, trader, meta, c.r, c.s);
            uint64 bar = _raiseBar(trader, baseToken, quoteToken, below);
            ctx.accounts[traderIndex] |= HAS_BARS;
            emit NoncesInvalidated(trader, bar, baseToken, quoteToken);
        }
    }

    /// @dev Commits the orders the engine closed itself, unfillable (after the fills).
    function _applyKills(address[] calldata traders, Kill[] calldata kills, Ctx memory ctx) private {
        uint256 count = kills.length;
        for (uint256 i = 0; i < count; ++i) {
            uint256 meta = kills[i].meta;
            bytes32 orderHash = kills[i].orderHash;
            uint256 traderIndex = (meta >> TRADER_SHIFT) & U16;
            address trader = traders[traderIndex];
            ctx.accounts[traderIndex] = _killOrder(trader, ctx.accounts[traderIndex], uint64(meta), orderHash);
            emit OrderClosed(trader, orderHash);
        }
    }

    /// @dev Writes back, per trader, the account word (if it changed) and each netted
    ///      (trader, token) balance (one read and one write per slot); then the fees.
    function _writeBack(address[] calldata traders, address[] calldata tokens, Ctx memory ctx) private {
        uint256 traderCount = traders.length;
        uint256 rowBytes = tokens.length << 5;
        uint256[] memory accounts = ctx.accounts;
        uint256[] memory loaded = ctx.loaded;
        uint256 credits;
        uint256 debits;
        {
            uint256[] memory c = ctx.credits;
            uint256[] memory d = ctx.debits;
            assembly ("memory-safe") {
                credits := add(c, 0x20)
                debits := add(d, 0x20)
            }
        }
        for (uint256 t = 0; t < traderCount;) {
            address trader = traders[t];
            uint256 account = _load(accounts, t) | REGISTERED;
            if (account != _load(loaded, t)) _accounts[trader] = account;
            _writeTraderBalances(trader, tokens, credits, debits);
            unchecked {
                ++t;
                credits += rowBytes;
                debits += rowBytes;
            }
        }
        address recipient = feeRecipient;
        uint256 tokenCount = tokens.length;
        for (uint256 k = 0; k < tokenCount;) {
            uint256 fee = _load(ctx.feeCredits, k);
            if (fee != 0) _balances[recipient][tokens[k]] += fee;
            unchecked {
                ++k;
            }
        }
    }

    /// @dev balance += credit − debit for each token of one trader; `credits`/`debits` point at
    ///      the trader's row. Token addresses were validated (sorted) by `_loadContext`.
    function _writeTraderBalances(address trader, address[] calldata tokens, uint256 credits, uint256 debits)
        private
    {
        bytes4 insufficient = InsufficientBalance.selector;
        assembly ("memory-safe") {
            mstore(0x00, and(trader, 0xffffffffffffffffffffffffffffffffffffffff))
            mstore(0x20, _balances.slot)
            let traderSlot := keccak256(0x00, 0x40)
            for { let k := 0 } lt(k, tokens.length) { k := add(k, 1) } {
                let credit := mload(add(credits, shl(5, k)))
                let debit := mload(add(debits, shl(5, k)))
                if iszero(eq(credit, debit)) {
                    let token := and(calldataload(add(tokens.offset, shl(5, k))), 0xffffffffffffffffffffffffffffffffffffffff)
                    mstore(0x00, token)
                    mstore(0x20, traderSlot)
                    let slot := keccak256(0x00, 0x40)
                    let available := add(sload(slot), credit)
                    if lt(available, credit) {
                        mstore(0x00, 0x4e487b71)
                        mstore(0x20, 0x11)
                        revert(0x1c, 0x24)
                    }
                    // Must be covered by the trader's balance (net over the batch).
                    if lt(available, debit) {
                        let m := mload(0x40)
                        mstore(m, insufficient)
                        mstore(add(m, 0x04), and(trader, 0xffffffffffffffffffffffffffffffffffffffff))
                        mstore(add(m, 0x24), token)
                        mstore(add(m, 0x44), available)
                        mstore(add(m, 0x64), debit)
                        revert(m, 0x84)
                    }
                    sstore(slot, sub(available, debit))
                }
            }
        }
    }

    /// @dev keccak256 of the fills exactly as sent (amount, packed words), for reconciliation.
    function _fillsHash(Fill[] calldata fills) private pure returns (bytes32 h) {
        assembly ("memory-safe") {
            let size := shl(6, fills.length)
            let m := mload(0x40)
            calldatacopy(m, fills.offset, size)
            h := keccak256(m, size)
        }
    }

    /// @dev arr[index] without a bounds check (indices are validated by the caller).
    function _load(uint256[] memory arr, uint256 index) private pure returns (uint256 value) {
        assembly ("memory-safe") {
            value := mload(add(add(arr, 0x20), shl(5, index)))
        }
    }

    /// @dev arr[index] = value without a bounds check (indices are validated by the caller).
    function _store(uint256[] memory arr, uint256 index, uint256 value) private pure {
        assembly ("memory-safe") {
            mstore(add(add(arr, 0x20), shl(5, index)), value)
        }
    }

    /// @dev arr[index] += value, overflow-checked (Panic 0x11), without a bounds check.
    function _addAt(uint256[] memory arr, uint256 index, uint256 value) private pure {
        assembly ("memory-safe") {
            let p := add(add(arr, 0x20), shl(5, index))
            let sum := add(mload(p), value)
            if lt(sum, value) {
                mstore(0x00, 0x4e487b71)
                mstore(0x20, 0x11)
                revert(0x1c, 0x24)
            }
            mstore(p, sum)
        }
    }

    // ------------------------------------------------------------------------------------------
    // Views
    // ------------------------------------------------------------------------------------------

    /// @inheritdoc IExchange
    function filledAmount(bytes32 orderHash) external view override returns (uint256) {
        return _filled[orderHash];
    }

    /// @inheritdoc IExchange
    function isNonceUsed(address trader, uint64 nonce) external view override returns (bool) {
        return _isNonceUsed(trader, _accounts[trader], nonce);
    }

    /// @inheritdoc IExchange
    function isWithdrawalNonceUsed(address trader, uint64 nonce) external view override returns (bool) {
        return _withdrawalNonceWords[trader][nonce >> 8] & (1 << (nonce & 0xff)) != 0;
    }

    /// @inheritdoc IExchange
    function nonceBar(address trader, address baseToken, address quoteToken) external view override returns (uint64) {
        return _barOf(trader, baseToken, quoteToken);
    }

    /// @inheritdoc IExchange
    function cancelEffectiveTime(bytes32 orderHash) external view override returns (uint256) {
        return _cancelTimes[orderHash];
    }

    /// @inheritdoc IExchange
    function pendingNonceBar(address trader) external view override returns (uint64 below, uint256 effectiveTime) {
        uint256 pending = _pendingBars[trader];
        return (uint64(pending), pending >> 64);
    }

    /// @inheritdoc IExchange
    function exitBlock(address trader) external view override returns (uint256) {
        return (_accounts[trader] >> EXIT_SHIFT) & EXIT_MASK;
    }

    /// @inheritdoc IExchange
    function hashOrder(Order calldata order) external view override returns (bytes32) {
        return _hashOrder(order);
    }

    /// @inheritdoc IExchange
    function hashCancel(Cancel calldata cancel) external view override returns (bytes32) {
        return _hashTypedDataV4(Hashing.cancelStructHash(cancel.trader, cancel.orderHash));
    }

    /// @inheritdoc IExchange
    function hashCancelAll(CancelAll calldata c) external view override returns (bytes32) {
        return _hashTypedDataV4(Hashing.cancelAllStructHash(c.trader, c.baseToken, c.quoteToken, c.nonceBelow));
    }

    /// @inheritdoc IExchange
    function hashWithdrawal(Withdrawal calldata w) external view override returns (bytes32) {
        return _hashTypedDataV4(Hashing.withdrawalStructHash(w.trader, w.token, w.amount, w.nonce, w.expiry));
    }

    /// @inheritdoc IExchange
    function domainSeparator() external view override returns (bytes32) {
        return _domainSeparatorV4();
    }

    // ------------------------------------------------------------------------------------------
    // Admin
    // ------------------------------------------------------------------------------------------

    /// @inheritdoc IExchange
    function setExitDelay(uint256 newExitDelay) external override onlyRole(DEFAULT_ADMIN_ROLE) {
        _setExitDelay(newExitDelay);
    }

    /// @inheritdoc IExchange
    function setFeeRecipient(address newFeeRecipient) external override onlyRole(DEFAULT_ADMIN_ROLE) {
        // Must not send fees to the zero address.
        if (newFeeRecipient == address(0)) revert ZeroAddress();
        _setFeeRecipient(newFeeRecipient);
    }

    /// @inheritdoc IExchange
    function pause() external override onlyRole(DEFAULT_ADMIN_ROLE) {
        _pause();
    }

    /// @inheritdoc IExchange
    function unpause() external override onlyRole(DEFAULT_ADMIN_ROLE) {
        _unpause();
    }

    // ------------------------------------------------------------------------------------------
    // Internals
    // ------------------------------------------------------------------------------------------

    function _deposit(address trader, address token, uint256 amount) private {
        // Must deposit something, of a real token.
        if (amount == 0) revert ZeroAmount();
        if (token == address(0)) revert ZeroAddress();
        IERC20 erc20 = IERC20(token);
        uint256 before = erc20.balanceOf(address(this));
        erc20.safeTransferFrom(msg.sender, address(this), amount);
        uint256 received = erc20.balanceOf(address(this)) - before;
        // Must receive exactly `amount`: fee-on-transfer tokens are refused (docs/contract.md).
        if (received != amount) revert TransferAmountMismatch(token, amount, received);
        _balances[trader][token] += amount;
        // The first deposit creates the account word, so settlement never pays for a fresh one.
        if (_accounts[trader] == 0) _accounts[trader] = REGISTERED;
        emit Deposited(trader, token, amount, msg.sender);
    }

    function _setExitDelay(uint256 newExitDelay) private {
        // Must leave the operator time to settle, and traders a bounded wait.
        if (newExitDelay < MIN_EXIT_DELAY || newExitDelay > MAX_EXIT_DELAY) {
            revert ExitDelayOutOfBounds(newExitDelay, MIN_EXIT_DELAY, MAX_EXIT_DELAY);
        }
        exitDelay = newExitDelay;
        emit ExitDelaySet(newExitDelay);
    }

    function _setFeeRecipient(address newFeeRecipient) private {
        feeRecipient = newFeeRecipient;
        emit FeeRecipientSet(newFeeRecipient);
    }

    function _hashOrder(Order calldata o) private view returns (bytes32) {
        uint256 meta = uint256(o.nonce) | (uint256(o.expiry) << EXPIRY_SHIFT) | (uint256(o.side) << SIDE_SHIFT)
            | (uint256(o.timeInForce) << 136) | (uint256(o.maxFeeBps) << MAX_FEE_SHIFT);
        return _hashTypedDataV4(Hashing.orderStructHash(o.trader, o.baseToken, o.quoteToken, o.price, o.amount, meta));
    }

    function _checkSignature(bytes32 digest, address signer, uint256 meta, bytes32 r, bytes32 s) private pure {
        (address recovered, ECDSA.RecoverError err,) = ECDSA.tryRecover(digest, uint8(meta >> V_SHIFT), r, s);
        // Must be signed by `signer` (valid v, low s).
        if (err != ECDSA.RecoverError.NoError || recovered != signer) revert InvalidSignature(signer, digest);
    }

    /// @dev The bar in force for (trader, market): the global bar, the market's, and an
    ///      on-chain invalidation whose delay has passed, whichever is highest.
    function _barOf(address trader, address baseToken, address quoteToken) private view returns (uint64 bar) {
        bar = _nonceBars[_barKey(trader, address(0), address(0))];
        if (baseToken != address(0) || quoteToken != address(0)) {
            uint64 marketBar = _nonceBars[_barKey(trader, baseToken, quoteToken)];
            if (marketBar > bar) bar = marketBar;
        }
        uint256 pending = _pendingBars[trader];
        if (pending != 0 && block.timestamp >= pending >> 64 && uint64(pending) > bar) bar = uint64(pending);
    }

    /// @dev Whether `nonce` is set in the trader's order-nonce bitmap (as `_useNonce` reads it).
    function _isNonceUsed(address trader, uint256 account, uint64 nonce) private view returns (bool) {
        uint256 word = nonce >> 7;
        uint256 windowWord = (account >> WORD_SHIFT) & WORD_MASK;
        if (word > windowWord) return false;
        uint256 bits = word == windowWord ? account : _nonceWords[trader][word];
        return bits & (1 << (nonce & 127)) != 0;
    }

    /// @dev Raises (never lowers) a bar; returns the bar now in force.
    function _raiseBar(address trader, address baseToken, address quoteToken, uint64 below) private returns (uint64) {
        bytes32 key = _barKey(trader, baseToken, quoteToken);
        uint64 bar = _nonceBars[key];
        if (below <= bar) return bar;
        _nonceBars[key] = below;
        return below;
    }

    function _barKey(address trader, address baseToken, address quoteToken) private pure returns (bytes32 key) {
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, and(trader, 0xffffffffffffffffffffffffffffffffffffffff))
            mstore(add(m, 0x20), and(baseToken, 0xffffffffffffffffffffffffffffffffffffffff))
            mstore(add(m, 0x40), and(quoteToken, 0xffffffffffffffffffffffffffffffffffffffff))
            key := keccak256(m, 0x60)
        }
    }

    function _tokenOrZero(address[] calldata tokens, uint256 index) private pure returns (address) {
        return index == NO_TOKEN ? address(0) : tokens[index];
    }

    /// @dev Marks `nonce` consumed and clears any partial amount: the order can never settle.
    function _killOrder(address trader, uint256 account, uint64 nonce, bytes32 orderHash) private returns (uint256) {
        (uint256 updated, bool used) = _useNonce(trader, account, nonce);
        if (used && _filled[orderHash] != 0) delete _filled[orderHash];
        return updated;
    }

    /// @dev Sets the bit of `nonce` in the trader's order-nonce bitmap and returns the updated
    ///      account word and whether the bit was already set. The account word carries the
    ///      bitmap word of the highest nonce seen (the window); it only moves forward, spilling
    ///      its bits to `_nonceWords`, so words above the window are always empty.
    function _useNonce(address trader, uint256 account, uint64 nonce) private returns (uint256, bool) {
        uint256 word = nonce >> 7;
        uint256 bit = 1 << (nonce & 127);
        uint256 windowWord = (account >> WORD_SHIFT) & WORD_MASK;
        if (word == windowWord) {
            return (account | bit, account & bit != 0);
        }
        if (word > windowWord) {
            uint256 bits = account & WINDOW_BITS;
            if (bits != 0) _nonceWords[trader][windowWord] = bits;
            return ((account & ~(WINDOW_BITS | (WORD_MASK << WORD_SHIFT))) | (word << WORD_SHIFT) | bit, false);
        }
        uint256 stored = _nonceWords[trader][word];
        if (stored & bit != 0) return (account, true);
        _nonceWords[trader][word] = stored | bit;
        return (account, false);
    }
}
