//! The engine state machine, a line-for-line port of `backend/matching/engine.py` (the
//! reference model): same checks in the same order, same events in the same order.
//!
//! Pure Rust, no Python: strings are interned symbols, amounts are `U256`, and every
//! computation that the invariants say cannot overflow is still checked and ends in a
//! `Fault` (the engine must stop) rather than a wrap or a panic.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use crate::num::*;

pub type Sym = u32;

/// An order hash: 32 bytes inline (an EIP-712 digest, every real one), any other length on the
/// heap. Compares, hashes and orders as its bytes, so maps keyed by it are looked up by `&[u8]`.
#[derive(Clone, Debug)]
pub enum Hash {
    Inline([u8; 32]),
    Heap(Box<[u8]>),
}

impl std::ops::Deref for Hash {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        match self {
            Hash::Inline(b) => b,
            Hash::Heap(b) => b,
        }
    }
}

impl std::borrow::Borrow<[u8]> for Hash {
    fn borrow(&self) -> &[u8] {
        self
    }
}

impl From<&[u8]> for Hash {
    #[inline]
    fn from(b: &[u8]) -> Self {
        match <[u8; 32]>::try_from(b) {
            Ok(a) => Hash::Inline(a),
            Err(_) => Hash::Heap(b.into()),
        }
    }
}

impl From<Vec<u8>> for Hash {
    fn from(b: Vec<u8>) -> Self {
        Hash::from(b.as_slice())
    }
}

impl PartialEq for Hash {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for Hash {}

impl std::hash::Hash for Hash {
    fn hash<S: std::hash::Hasher>(&self, state: &mut S) {
        (**self).hash(state)
    }
}

impl PartialOrd for Hash {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Hash {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (**self).cmp(&**other)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Side {
    Buy = 0,
    Sell = 1,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Tif {
    Gtc = 0,
    Ioc = 1,
    Fok = 2,
    PostOnly = 3,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum MState {
    Online = 0,
    PostOnly = 1,
    CancelOnly = 2,
    Halted = 3,
}

impl MState {
    pub const NAMES: [&'static str; 4] = ["ONLINE", "POST_ONLY", "CANCEL_ONLY", "HALTED"];
    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }
    pub fn from_name(s: &str) -> Option<Self> {
        Some(match s {
            "ONLINE" => MState::Online,
            "POST_ONLY" => MState::PostOnly,
            "CANCEL_ONLY" => MState::CancelOnly,
            "HALTED" => MState::Halted,
            _ => return None,
        })
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Reason {
    User = 0,
    Stp,
    Expired,
    IocRemainder,
    Frozen,
    CancelAll,
    FillReverted,
    Scheduled,
    Disconnect,
}

/// The ErrorCode members the engine emits (names as in backend/domain/errors.py).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Code {
    InvalidRequest = 0,
    InvalidOrder,
    UnknownMarket,
    InvalidTick,
    InvalidLot,
    Expired,
    NonceReused,
    OrderNotFound,
    OrderCancelled,
    InsufficientBalance,
    PriceOutOfBand,
    OrderTooLarge,
    AccountExiting,
    PostOnlyWouldTake,
    FokNotFillable,
    MarketNotAccepting,
    DuplicateClientOrderId,
    FillAlreadyReverted,
    ScheduleTooSoon,
}

impl Code {
    pub const NAMES: [&'static str; 19] = [
        "INVALID_REQUEST",
        "INVALID_ORDER",
        "UNKNOWN_MARKET",
        "INVALID_TICK",
        "INVALID_LOT",
        "EXPIRED",
        "NONCE_REUSED",
        "ORDER_NOT_FOUND",
        "ORDER_CANCELLED",
        "INSUFFICIENT_BALANCE",
        "PRICE_OUT_OF_BAND",
        "ORDER_TOO_LARGE",
        "ACCOUNT_EXITING",
        "POST_ONLY_WOULD_TAKE",
        "FOK_NOT_FILLABLE",
        "MARKET_NOT_ACCEPTING",
        "DUPLICATE_CLIENT_ORDER_ID",
        "FILL_ALREADY_REVERTED",
        "SCHEDULE_TOO_SOON",
    ];
}

/// An order hash in an event: the command's own (the binding hands back the caller's object)
/// or one held by the engine.
#[derive(Clone, Debug)]
pub enum H {
    Cmd,
    Own(Hash),
}

#[derive(Debug)]
pub enum Ev {
    /// The other fields are the command's, which the binding hands back as given.
    Accepted { trader: Sym, market: Sym, side: Side, tif: Tif },
    Rejected { trader: Sym, market: Sym, code: Code, msg: String },
    Duplicate { trader: Sym },
    /// Boxed, as FillReverted: the two largest variants would make every event as large.
    Fill(Box<FillEv>),
    Cancelled { hash: H, trader: Sym, market: Sym, reason: Reason, remaining: U256 },
    CancelRejected { trader: Sym },
    CancelAllApplied { trader: Sym, market: Option<Sym>, nonce_below: u128, cancelled: usize },
    Balance { trader: Sym, token: Sym, total: U256, locked: U256 },
    WReserved { wid: Box<str>, trader: Sym, token: Sym, amount: U256 },
    WReleased { wid: Box<str>, trader: Sym, token: Sym, amount: U256 },
    Frozen { trader: Sym },
    MarketAdded { market: Sym },
    MarketState { market: Sym, old: MState, new: MState, reason: &'static str },
    Risk { market: Sym, kind: &'static str, msg: String, reference: U256, price: U256 },
    CmdRejected { command: &'static str, code: Code, msg: String },
    FillReverted(Box<RevertEv>),
    CancelScheduled { trader: Sym, time: u64, nonce: u64 },
}

#[derive(Debug)]
pub struct FillEv { pub fill_index: u32, pub market: Sym, pub maker_hash: Hash, pub maker_trader: Sym, pub taker_hash: H, pub taker_trader: Sym, pub taker_side: Side, pub price: U256, pub amount: U256, pub quote: U256, pub maker_fee: U256, pub taker_fee: U256, pub maker_left: U256, pub taker_left: U256 }

#[derive(Debug)]
pub struct RevertEv { pub fill_seq: i128, pub fill_index: i128, pub market: Sym, pub maker_hash: Hash, pub maker_trader: Sym, pub taker_hash: Hash, pub taker_trader: Sym, pub amount: U256, pub maker_left: Option<U256>, pub taker_left: Option<U256> }

pub struct SpecIn {
    pub market_id: Sym,
    pub base: Sym,
    pub quote: Sym,
    pub tick: PInt,
    pub lot: PInt,
    pub min_amount: PInt,
    pub maker_bps: PInt,
    pub taker_bps: PInt,
    pub state: MState,
    pub max_amount: PInt,
    pub max_notional: PInt,
    pub band_bps: PInt,
    pub move_bps: PInt,
    pub window_s: PInt,
}

pub enum Cmd<'a> {
    Place { now: i128, h: &'a [u8], trader: Sym, market: Sym, side: Side, price: PInt, amount: PInt, tif: Tif, nonce: PInt, expiry: PInt, coid: Option<&'a str> },
    Cancel { h: &'a [u8], trader: Sym },
    CancelAll { trader: Sym, market: Option<Sym>, nonce_below: PInt },
    Credit { trader: Sym, token: Sym, amount: PInt },
    Debit { trader: Sym, token: Sym, amount: PInt, wid: Option<&'a str> },
    Reserve { trader: Sym, token: Sym, amount: PInt, wid: &'a str },
    Release { wid: &'a str },
    Freeze { trader: Sym },
    AddMarket { spec: SpecIn },
    SetState { market: Sym, state: MState },
    Sweep { now: i128 },
    ScheduleCancel { now: i128, trader: Sym, time: PInt, nonce: PInt },
    ArmDisconnect { now: i128, trader: Sym, conn: &'a str, deadline: PInt },
    CancelOnDisconnect { trader: Sym, conn: &'a str },
    Revert { fill_seq: i128, fill_index: i128, market: Sym, maker_hash: &'a [u8], maker_trader: Sym, taker_hash: &'a [u8], taker_trader: Sym, taker_side: Side, price: PInt, amount: PInt, quote_amount: PInt, maker_fee: PInt, taker_fee: PInt },
}

#[derive(Clone, Debug)]
pub struct Spec {
    pub market_id: Sym,
    pub base: Sym,
    pub quote: Sym,
    pub tick: U256,
    pub lot: U256,
    pub min_amount: U256,
    pub maker_bps: u64,
    pub taker_bps: u64,
    pub state: MState,
    pub max_amount: U256,
    pub max_notional: U256,
    pub band_bps: U256,
    pub move_bps: U256,
    pub window_s: u64,
}

/// A resting order, compact (the book holds millions): its hash is an index into the engine's
/// hash arena, its amounts are `Amt`s, its client order id (rare) lives in a side table.
#[derive(Clone)]
pub struct Order {
    pub price: Amt,
    pub amount: Amt,
    pub remaining: Amt,
    pub nonce: u64,
    pub expiry: u64,
    pub hid: u32,
    pub trader: Sym,
    pub market: u32,
    pub generation: u32,
    pub side: Side,
    pub tif: Tif,
    pub open: bool,
    pub has_coid: bool,
}

/// An amount as stored in an order: the value itself below 2**127 (every real one), else an
/// index into the engine's table of wide values (`Bigs`). Exact either way.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Amt([u64; 2]);

const WIDE: u64 = 1 << 63;

/// The wide amounts of resting orders, with a free list: slots are reused when orders close.
#[derive(Clone, Default)]
pub struct Bigs {
    vals: Vec<U256>,
    free: Vec<u32>,
}

impl Bigs {
    #[inline]
    pub fn put(&mut self, v: U256) -> Amt {
        let l = v.as_limbs();
        if l[2] == 0 && l[3] == 0 && l[1] & WIDE == 0 {
            return Amt([l[0], l[1]]);
        }
        let i = match self.free.pop() {
            Some(i) => {
                self.vals[i as usize] = v;
                i
            }
            None => {
                self.vals.push(v);
                (self.vals.len() - 1) as u32
            }
        };
        Amt([i as u64, WIDE])
    }
    #[inline]
    pub fn get(&self, a: Amt) -> U256 {
        if a.0[1] & WIDE == 0 { U256::from_limbs([a.0[0], a.0[1], 0, 0]) } else { self.vals[a.0[0] as usize] }
    }
    #[inline]
    pub fn free(&mut self, a: Amt) {
        if a.0[1] & WIDE != 0 {
            self.free.push(a.0[0] as u32);
        }
    }
    /// Replace the value `a` holds by `v`.
    #[inline]
    pub fn set(&mut self, a: &mut Amt, v: U256) {
        self.free(*a);
        *a = self.put(v);
    }
}

/// The FxHash of an order hash's bytes: how the per-trader tables of open orders find one.
#[inline]
pub fn hash_key(h: &[u8]) -> u64 {
    use std::hash::{Hash as _, Hasher as _};
    let mut s = rustc_hash::FxHasher::default();
    h.hash(&mut s);
    s.finish()
}

/// One trader's open orders: slab indexes, found by the order's hash bytes.
pub type OpenOrders = hashbrown::HashTable<u32>;

/// A reference into the order slab; a stale one (the order closed, the slot reused) no
/// longer matches the slot's generation, as a closed Python `Order` has `open == False`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct ORef {
    pub idx: u32,
    pub generation: u32,
}

#[derive(Clone)]
pub struct Level {
    pub price: U256,
    pub orders: VecDeque<ORef>,
    pub total: U256,
    pub live: u32,
}

impl Level {
    fn new(price: U256) -> Self {
        Level { price, orders: VecDeque::new(), total: U256::ZERO, live: 0 }
    }
}

pub type Levels = BTreeMap<U256, Level>;

/// Bids are keyed by MAX - price so that both sides iterate best first.
#[inline]
pub fn level_key(side: Side, price: U256) -> U256 {
    if side == Side::Buy { U256::MAX - price } else { price }
}

#[derive(Clone)]
pub struct Market {
    pub spec: Spec,
    pub state: MState,
    pub bids: Levels,
    pub asks: Levels,
    pub last_price: U256,
    pub highs: VecDeque<(i128, U256)>,
    pub lows: VecDeque<(i128, U256)>,
}

impl Market {
    pub fn new(spec: Spec) -> Self {
        Market { state: spec.state, spec, bids: Levels::new(), asks: Levels::new(), last_price: U256::ZERO, highs: VecDeque::new(), lows: VecDeque::new() }
    }
    pub fn side(&self, side: Side) -> &Levels {
        if side == Side::Buy { &self.bids } else { &self.asks }
    }
    pub fn side_mut(&mut self, side: Side) -> &mut Levels {
        if side == Side::Buy { &mut self.bids } else { &mut self.asks }
    }
    pub fn best(&self, side: Side) -> Option<U256> {
        self.side(side).values().next().map(|l| l.price)
    }
    fn reference_price(&self) -> Option<U256> {
        if !self.last_price.is_zero() {
            return Some(self.last_price);
        }
        let (bid, ask) = (self.best(Side::Buy)?, self.best(Side::Sell)?);
        narrow((wide(bid) + wide(ask)) / U512::from(2u64))
    }
    fn breaker_enabled(&self) -> bool {
        !self.spec.move_bps.is_zero() && self.spec.window_s > 0
    }
    /// CircuitBreaker.record: sliding-window min and max with monotonic deques.
    fn record(&mut self, now: i128, price: U256) -> Option<(U256, U256)> {
        while self.highs.back().is_some_and(|x| x.1 <= price) {
            self.highs.pop_back();
        }
        self.highs.push_back((now, price));
        while self.lows.back().is_some_and(|x| x.1 >= price) {
            self.lows.pop_back();
        }
        self.lows.push_back((now, price));
        let horizon = now - self.spec.window_s as i128;
        while self.highs.front().is_some_and(|x| x.0 <= horizon) {
            self.highs.pop_front();
        }
        while self.lows.front().is_some_and(|x| x.0 <= horizon) {
            self.lows.pop_front();
        }
        let low = self.lows.front()?.1;
        let high = self.highs.front()?.1;
        // high >= low: the lows deque is increasing and holds the window's minimum
        let moved = (wide(high) - wide(low).min(wide(high))) * U512::from(BPS);
        if moved > wide(low) * wide(self.spec.move_bps) { Some((low, high)) } else { None }
    }
}

#[derive(Clone)]
pub struct Cell {
    pub trader: Sym,
    pub token: Sym,
    pub total: U256,
    pub locked: U256,
}

#[derive(Clone, Default)]
pub struct Interner {
    map: HashMap<Box<str>, Sym>,
    pub strs: Vec<Box<str>>,
}

impl Interner {
    pub fn get(&mut self, s: &str) -> Sym {
        if let Some(&k) = self.map.get(s) {
            return k;
        }
        let k = self.strs.len() as Sym;
        self.strs.push(s.into());
        self.map.insert(s.into(), k);
        k
    }
    pub fn find(&self, s: &str) -> Option<Sym> {
        self.map.get(s).copied()
    }
    pub fn s(&self, k: Sym) -> &str {
        &self.strs[k as usize]
    }
}

#[derive(Clone)]
pub struct Engine {
    pub syms: Interner,
    pub empty: Sym,
    pub fee_recipient: Sym,
    pub markets: Vec<Market>,
    pub market_index: HashMap<Sym, u32>,
    pub slab: Vec<Order>,
    free: Vec<u32>,
    pub cells: Vec<Cell>,
    pub cell_index: HashMap<(Sym, Sym), u32>,
    /// Sum of `total` per token: bounded by 2**256-1 as on chain, so no cell can overflow.
    pub supply: HashMap<Sym, U256>,
    pub open_orders: HashMap<Sym, OpenOrders>,
    /// Every hash an accepted order had (nonces keep them after the order closes).
    pub hashes: Vec<Hash>,
    pub nonces: HashMap<Sym, HashMap<u64, u32>>,
    pub coids: HashMap<u32, Box<str>>,
    pub bigs: Bigs,
    pub client_ids: HashMap<Sym, HashMap<Box<str>, Hash>>,
    pub cancel_bars: HashMap<Sym, HashMap<Sym, u128>>,
    pub frozen: HashSet<Sym>,
    pub withdrawals: HashMap<Box<str>, (Sym, Sym, U256)>,
    pub expiries: BinaryHeap<Reverse<(u64, Hash, ORef)>>,
    pub reverted: HashSet<(i128, i128)>,
    /// trader -> (time the ScheduleCancel fires, 0 = none; the last ScheduleCancel nonce).
    pub cancel_schedules: HashMap<Sym, (u64, u64)>,
    /// (trader, connection id) -> deadline of a cancel-on-disconnect timer.
    pub disconnect_timers: HashMap<(Sym, Box<str>), u64>,
    pub last_seq: i128,
    dirty: Vec<u32>,
}

const U64_MAX_PLUS_1: u128 = 1u128 << 64;

impl Engine {
    pub fn new(fee_recipient: &str) -> Self {
        let mut syms = Interner::default();
        let empty = syms.get("");
        let fee_recipient = syms.get(fee_recipient);
        Engine {
            syms,
            empty,
            fee_recipient,
            markets: Vec::new(),
            market_index: HashMap::default(),
            slab: Vec::new(),
            free: Vec::new(),
            cells: Vec::new(),
            cell_index: HashMap::default(),
            supply: HashMap::default(),
            open_orders: HashMap::default(),
            hashes: Vec::new(),
            nonces: HashMap::default(),
            coids: HashMap::default(),
            bigs: Bigs::default(),
            client_ids: HashMap::default(),
            cancel_bars: HashMap::default(),
            frozen: HashSet::default(),
            withdrawals: HashMap::default(),
            expiries: BinaryHeap::new(),
            reverted: HashSet::default(),
            cancel_schedules: HashMap::default(),
            disconnect_timers: HashMap::default(),
            last_seq: 0,
            dirty: Vec::new(),
        }
    }

    // ------------------------------------------------------------------ slab and cells

    #[inline]
    pub fn get(&self, r: ORef) -> Option<&Order> {
        let o = &self.slab[r.idx as usize];
        if o.generation == r.generation && o.open { Some(o) } else { None }
    }

    fn alloc(&mut self, mut o: Order) -> ORef {
        if let Some(idx) = self.free.pop() {
            let generation = self.slab[idx as usize].generation.wrapping_add(1);
            o.generation = generation;
            self.slab[idx as usize] = o;
            ORef { idx, generation }
        } else {
            o.generation = 0;
            self.slab.push(o);
            ORef { idx: (self.slab.len() - 1) as u32, generation: 0 }
        }
    }

    fn release(&mut self, r: ORef) {
        let o = &mut self.slab[r.idx as usize];
        if o.generation == r.generation {
            o.open = false;
            o.generation = o.generation.wrapping_add(1);
            let (p, a, m) = (o.price, o.amount, o.remaining);
            if o.has_coid {
                o.has_coid = false;
                self.coids.remove(&r.idx);
            }
            self.bigs.free(p);
            self.bigs.free(a);
            self.bigs.free(m);
            self.free.push(r.idx);
        }
    }

    /// An order's hash, price, amount, remaining and reservation.
    #[inline]
    pub fn hash_of(&self, o: &Order) -> &Hash {
        &self.hashes[o.hid as usize]
    }
    #[inline]
    pub fn price(&self, o: &Order) -> U256 {
        self.bigs.get(o.price)
    }
    #[inline]
    pub fn amount(&self, o: &Order) -> U256 {
        self.bigs.get(o.amount)
    }
    #[inline]
    pub fn remaining(&self, o: &Order) -> U256 {
        self.bigs.get(o.remaining)
    }
    pub fn coid(&self, idx: u32) -> Option<&str> {
        self.coids.get(&idx).map(|c| &**c)
    }
    pub fn reserved(&self, o: &Order) -> R<U256> {
        let remaining = self.remaining(o);
        if o.side == Side::Buy { mul_div(remaining, self.price(o), PRICE_SCALE) } else { Ok(remaining) }
    }

    pub fn push_hash(&mut self, h: &[u8]) -> u32 {
        self.hashes.push(h.into());
        (self.hashes.len() - 1) as u32
    }

    /// The trader's open order with hash `h`.
    #[inline]
    pub fn find_open(&self, trader: Sym, h: &[u8]) -> Option<ORef> {
        let table = self.open_orders.get(&trader)?;
        let idx = *table.find(hash_key(h), |&i| *self.hashes[self.slab[i as usize].hid as usize] == *h)?;
        Some(ORef { idx, generation: self.slab[idx as usize].generation })
    }

    /// The trader's open orders, in no particular order.
    pub fn open_of(&self, trader: Sym) -> Vec<ORef> {
        self.open_orders.get(&trader).map(|t| t.iter().map(|&idx| ORef { idx, generation: self.slab[idx as usize].generation }).collect()).unwrap_or_default()
    }

    fn index_open(&mut self, trader: Sym, idx: u32) {
        let (slab, hashes) = (&self.slab, &self.hashes);
        let key = hash_key(&hashes[slab[idx as usize].hid as usize]);
        self.open_orders.entry(trader).or_default().insert_unique(key, idx, |&i| hash_key(&hashes[slab[i as usize].hid as usize]));
    }

    fn unindex_open(&mut self, trader: Sym, idx: u32) {
        let key = hash_key(&self.hashes[self.slab[idx as usize].hid as usize]);
        if let Some(table) = self.open_orders.get_mut(&trader) {
            if let Ok(entry) = table.find_entry(key, |&i| i == idx) {
                entry.remove();
            }
            if table.is_empty() {
                self.open_orders.remove(&trader);
            }
        }
    }

    pub fn cell_get(&self, trader: Sym, token: Sym) -> Option<u32> {
        self.cell_index.get(&(trader, token)).copied()
    }

    pub fn cell(&mut self, trader: Sym, token: Sym) -> u32 {
        if let Some(&c) = self.cell_index.get(&(trader, token)) {
            return c;
        }
        let c = self.cells.len() as u32;
        self.cells.push(Cell { trader, token, total: U256::ZERO, locked: U256::ZERO });
        self.cell_index.insert((trader, token), c);
        c
    }

    #[inline]
    fn mark(&mut self, c: u32) {
        if !self.dirty.contains(&c) {
            self.dirty.push(c);
        }
    }

    fn balance_ev(&self, c: u32) -> Ev {
        let cell = &self.cells[c as usize];
        Ev::Balance { trader: cell.trader, token: cell.token, total: cell.total, locked: cell.locked }
    }

    fn flush(&mut self, events: &mut Vec<Ev>) {
        let dirty = std::mem::take(&mut self.dirty);
        for &c in &dirty {
            events.push(self.balance_ev(c));
        }
        self.dirty = dirty;
        self.dirty.clear();
    }

    fn lock_token(&self, o: &Order) -> Sym {
        let spec = &self.markets[o.market as usize].spec;
        if o.side == Side::Buy { spec.quote } else { spec.base }
    }

    // ------------------------------------------------------------------ apply

    pub fn apply(&mut self, seq: i128, cmd: &Cmd, events: &mut Vec<Ev>) -> R<()> {
        if seq <= self.last_seq {
            return Err(Fault(format!("sequence number must increase (seq={seq}, last={})", self.last_seq)));
        }
        self.last_seq = seq;
        self.dirty.clear();
        match cmd {
            Cmd::Place { .. } => self.place(cmd, events),
            Cmd::Cancel { h, trader } => self.cancel(h, *trader, events),
            Cmd::CancelAll { trader, market, nonce_below } => self.cancel_all(*trader, *market, nonce_below, events),
            Cmd::Credit { trader, token, amount } => self.credit(*trader, *token, amount, events),
            Cmd::Debit { trader, token, amount, wid } => self.debit(*trader, *token, amount, *wid, events),
            Cmd::Reserve { trader, token, amount, wid } => self.reserve(*trader, *token, amount, wid, events),
            Cmd::Release { wid } => self.release_withdrawal(wid, events),
            Cmd::Freeze { trader } => self.freeze(*trader, events),
            Cmd::AddMarket { spec } => {
                self.add_market(spec, events);
                Ok(())
            }
            Cmd::SetState { market, state } => {
                self.set_state(*market, *state, events);
                Ok(())
            }
            Cmd::Sweep { now } => self.sweep(*now, events),
            Cmd::Revert { .. } => self.revert(cmd, events),
            Cmd::ScheduleCancel { now, trader, time, nonce } => {
                self.schedule_cancel(*now, *trader, time, nonce, events);
                Ok(())
            }
            Cmd::ArmDisconnect { now, trader, conn, deadline } => {
                self.arm_disconnect(*now, *trader, conn, deadline, events);
                Ok(())
            }
            Cmd::CancelOnDisconnect { trader, conn } => self.cancel_on_disconnect(*trader, conn, events),
        }
    }

    /// The earliest time a sweep has work: an order expiry (the order may have closed
    /// since), a ScheduleCancel or a cancel-on-disconnect deadline.
    pub fn next_deadline(&self) -> Option<u64> {
        let expiry = self.expiries.peek().map(|Reverse((e, _, _))| *e);
        let schedules = self.cancel_schedules.values().map(|&(t, _)| t).filter(|&t| t != 0);
        let timers = self.disconnect_timers.values().copied();
        expiry.into_iter().chain(schedules).chain(timers).min()
    }

    // ------------------------------------------------------------------ orders

    fn place(&mut self, cmd: &Cmd, events: &mut Vec<Ev>) -> R<()> {
        let Cmd::Place { now, h, trader, market: market_sym, side, price, amount, tif, nonce, expiry, coid } = cmd else {
            unreachable!()
        };
        let (now, trader, market_sym, side, tif) = (*now, *trader, *market_sym, *side, *tif);
        macro_rules! reject {
            ($code:expr, $msg:expr) => {{
                events.push(Ev::Rejected { trader, market: market_sym, code: $code, msg: $msg });
                return Ok(());
            }};
        }
        let (Some(nonce), Some(expiry)) = (nonce.u64(), expiry.u64()) else {
            reject!(Code::InvalidOrder, "nonce and expiry must fit in uint64".into())
        };
        if let Some(used) = self.nonces.get(&trader)
            && let Some(&prev) = used.get(&nonce)
        {
            if *self.hashes[prev as usize] == **h {
                events.push(Ev::Duplicate { trader });
                return Ok(());
            }
            reject!(Code::NonceReused, format!("nonce {nonce} already used"));
        }
        let Some(&mi) = self.market_index.get(&market_sym) else {
            reject!(Code::UnknownMarket, format!("unknown market {}", self.syms.s(market_sym)))
        };
        if self.frozen.contains(&trader) {
            reject!(Code::AccountExiting, "trader requested an exit".into());
        }
        let market = &self.markets[mi as usize];
        let state = market.state;
        if state != MState::Online && state != MState::PostOnly {
            reject!(Code::MarketNotAccepting, format!("market is {}", state.name()));
        }
        if expiry != 0 && (expiry as i128) <= now {
            reject!(Code::Expired, format!("expired at {expiry}"));
        }
        if let Some(bars) = self.cancel_bars.get(&trader) {
            let n = nonce as u128;
            if n < bars.get(&market_sym).copied().unwrap_or(0) || n < bars.get(&self.empty).copied().unwrap_or(0) {
                reject!(Code::OrderCancelled, "nonce below the cancel-all bar".into());
            }
        }
        if !price.is_pos() || !amount.is_pos() {
            reject!(Code::InvalidOrder, "price and amount must be positive".into());
        }
        let (Some(price), Some(amount)) = (price.val(), amount.val()) else {
            reject!(Code::InvalidOrder, "price and amount must fit in uint256".into())
        };
        let spec = &market.spec;
        if !divides(spec.tick, price) {
            reject!(Code::InvalidTick, format!("price off tick {}", spec.tick));
        }
        if !divides(spec.lot, amount) || amount < spec.min_amount {
            reject!(Code::InvalidLot, "amount off lot size or below minimum".into());
        }
        let is_buy = side == Side::Buy;
        let notional: U512 = if is_buy || !spec.max_notional.is_zero() { mul_div_wide(amount, price, PRICE_SCALE) } else { U512::ZERO };
        if (!spec.max_amount.is_zero() && amount > spec.max_amount) || (!spec.max_notional.is_zero() && notional > wide(spec.max_notional)) {
            reject!(Code::OrderTooLarge, "order above the market's limits".into());
        }
        if !spec.band_bps.is_zero()
            && let Some(reference) = market.reference_price()
        {
            let diff = if price > reference { price - reference } else { reference - price };
            if wide(diff) * U512::from(BPS) > wide(reference) * wide(spec.band_bps) {
                reject!(Code::PriceOutOfBand, format!("too far from {reference}"));
            }
        }
        if let Some(coid) = coid
            && let Some(ids) = self.client_ids.get(&trader)
            && ids.contains_key(*coid)
        {
            reject!(Code::DuplicateClientOrderId, "clientOrderId in use".into());
        }
        let need_wide = if is_buy { notional } else { wide(amount) };
        let token = if is_buy { spec.quote } else { spec.base };
        let cell = self.cell_get(trader, token);
        let free = cell.map(|c| {
            let b = &self.cells[c as usize];
            b.total.saturating_sub(b.locked)
        });
        let (Some(c), Some(free)) = (cell, free) else {
            reject!(Code::InsufficientBalance, format!("needs {need_wide} available"))
        };
        if wide(free) < need_wide {
            reject!(Code::InsufficientBalance, format!("needs {need_wide} available"));
        }
        let need = narrow(need_wide).ok_or_else(|| Fault("need above 2**256-1".into()))?;
        let opposite = market.side(if is_buy { Side::Sell } else { Side::Buy });
        let crosses = match opposite.values().next() {
            Some(best) => if is_buy { best.price <= price } else { best.price >= price },
            None => false,
        };
        if crosses && (tif == Tif::PostOnly || state == MState::PostOnly) && !self.takeable(opposite, is_buy, price, trader, now, U512::from(1u64)).is_zero() {
            reject!(Code::PostOnlyWouldTake, "order would take".into());
        }
        if tif == Tif::Fok && (!crosses || self.takeable(opposite, is_buy, price, trader, now, wide(amount)) < wide(amount)) {
            reject!(Code::FokNotFillable, "cannot fill entirely now".into());
        }

        // Accepted: from here on the order changes state.
        let market_id = spec.market_id;
        let hid = self.push_hash(h);
        self.nonces.entry(trader).or_default().insert(nonce, hid);
        let bal = &mut self.cells[c as usize];
        bal.locked = add(bal.locked, need)?;
        events.push(Ev::Accepted { trader, market: market_id, side, tif });
        if !crosses {
            if tif == Tif::Ioc || tif == Tif::Fok {
                let bal = &mut self.cells[c as usize];
                bal.locked = sub(bal.locked, need)?;
                events.push(Ev::Cancelled { hash: H::Cmd, trader, market: market_id, reason: Reason::IocRemainder, remaining: amount });
                events.push(self.balance_ev(c));
                return Ok(());
            }
            self.rest(hid, trader, mi, side, price, amount, amount, tif, nonce, expiry, *coid)?;
            events.push(self.balance_ev(c));
            return Ok(());
        }
        self.dirty.push(c);
        let remaining = self.do_match(mi, events, now, h, trader, is_buy, price, amount)?;
        if !remaining.is_zero() {
            if tif == Tif::Ioc || tif == Tif::Fok {
                let back = if is_buy { mul_div(remaining, price, PRICE_SCALE)? } else { remaining };
                let bal = &mut self.cells[c as usize];
                bal.locked = sub(bal.locked, back)?;
                events.push(Ev::Cancelled { hash: H::Cmd, trader, market: market_id, reason: Reason::IocRemainder, remaining });
            } else {
                self.rest(hid, trader, mi, side, price, amount, remaining, tif, nonce, expiry, *coid)?;
            }
        }
        self.flush(events);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub fn rest(&mut self, hid: u32, trader: Sym, mi: u32, side: Side, price: U256, amount: U256, remaining: U256, tif: Tif, nonce: u64, expiry: u64, coid: Option<&str>) -> R<ORef> {
        let (p, a, m) = (self.bigs.put(price), self.bigs.put(amount), self.bigs.put(remaining));
        let r = self.alloc(Order { price: p, amount: a, remaining: m, nonce, expiry, hid, trader, market: mi, generation: 0, side, tif, open: true, has_coid: coid.is_some() });
        let h: Hash = self.hashes[hid as usize].clone();
        let level = self.markets[mi as usize].side_mut(side).entry(level_key(side, price)).or_insert_with(|| Level::new(price));
        level.orders.push_back(r);
        level.total = add(level.total, remaining)?;
        level.live += 1;
        self.index_open(trader, r.idx);
        if let Some(coid) = coid {
            self.coids.insert(r.idx, coid.into());
            self.client_ids.entry(trader).or_default().insert(coid.into(), h.clone());
        }
        if expiry != 0 {
            self.expiries.push(Reverse((expiry, h, r)));
        }
        Ok(r)
    }

    #[allow(clippy::too_many_arguments)]
    fn do_match(&mut self, mi: u32, events: &mut Vec<Ev>, now: i128, taker_hash: &[u8], trader: Sym, is_buy: bool, limit: U256, mut remaining: U256) -> R<U256> {
        let _ = taker_hash;
        let spec = &self.markets[mi as usize].spec;
        let (market_id, window_s, move_bps) = (spec.market_id, spec.window_s, spec.move_bps);
        let (base, quote) = (spec.base, spec.quote);
        let (maker_bps, taker_bps) = (U256::from(spec.maker_bps), U256::from(spec.taker_bps));
        let taker_side = if is_buy { Side::Buy } else { Side::Sell };
        let maker_side = if is_buy { Side::Sell } else { Side::Buy };
        let breaker = self.markets[mi as usize].breaker_enabled();
        let mut tripped: Option<(U256, U256)> = None;
        let mut t_cells: Option<(u32, u32)> = None;
        let (mut fee_base, mut fee_quote) = (U256::ZERO, U256::ZERO);
        let mut fill_index: u32 = 0;
        while !remaining.is_zero() {
            let Some((&key, level)) = self.markets[mi as usize].side(maker_side).iter().next() else { break };
            let price = level.price;
            if if is_buy { price > limit } else { price < limit } {
                break;
            }
            let mut filled_here = false;
            loop {
                if remaining.is_zero() {
                    break;
                }
                let level = self.markets[mi as usize].side_mut(maker_side).get_mut(&key).expect("level");
                let Some(&r) = level.orders.front() else { break };
                let o = &self.slab[r.idx as usize];
                if o.generation != r.generation || !o.open {
                    level.orders.pop_front();
                    continue;
                }
                let maker_trader = o.trader;
                let maker_left = self.bigs.get(o.remaining);
                if maker_trader == trader || (o.expiry != 0 && (o.expiry as i128) <= now) {
                    level.orders.pop_front();
                    level.total = sub(level.total, maker_left)?;
                    level.live -= 1;
                    let reason = if maker_trader == trader { Reason::Stp } else { Reason::Expired };
                    self.close(r, reason, events)?;
                    continue;
                }
                let amount = if remaining < maker_left { remaining } else { maker_left };
                let quote_amount = mul_div(amount, price, PRICE_SCALE)?;
                let (tb, tq) = match t_cells {
                    Some(t) => t,
                    None => {
                        let t = (self.cell(trader, base), self.cell(trader, quote));
                        t_cells = Some(t);
                        t
                    }
                };
                let (maker_fee, taker_fee, mb, mq);
                if is_buy {
                    taker_fee = mul_div(amount, taker_bps, BPS)?;
                    maker_fee = mul_div(quote_amount, maker_bps, BPS)?;
                    let free_up = mul_div(amount, limit, PRICE_SCALE)?;
                    let c = &mut self.cells[tq as usize];
                    c.total = sub(c.total, quote_amount)?;
                    c.locked = sub(c.locked, free_up)?;
                    let c = &mut self.cells[tb as usize];
                    c.total = add(c.total, sub(amount, taker_fee)?)?;
                    mb = self.cell(maker_trader, base);
                    let c = &mut self.cells[mb as usize];
                    c.total = sub(c.total, amount)?;
                    c.locked = sub(c.locked, amount)?;
                    mq = self.cell(maker_trader, quote);
                    let c = &mut self.cells[mq as usize];
                    c.total = add(c.total, sub(quote_amount, maker_fee)?)?;
                    fee_base = add(fee_base, taker_fee)?;
                    fee_quote = add(fee_quote, maker_fee)?;
                } else {
                    taker_fee = mul_div(quote_amount, taker_bps, BPS)?;
                    maker_fee = mul_div(amount, maker_bps, BPS)?;
                    let c = &mut self.cells[tb as usize];
                    c.total = sub(c.total, amount)?;
                    c.locked = sub(c.locked, amount)?;
                    let c = &mut self.cells[tq as usize];
                    c.total = add(c.total, sub(quote_amount, taker_fee)?)?;
                    mq = self.cell(maker_trader, quote);
                    let c = &mut self.cells[mq as usize];
                    c.total = sub(c.total, quote_amount)?;
                    c.locked = sub(c.locked, quote_amount)?;
                    mb = self.cell(maker_trader, base);
                    let c = &mut self.cells[mb as usize];
                    c.total = add(c.total, sub(amount, maker_fee)?)?;
                    fee_quote = add(fee_quote, taker_fee)?;
                    fee_base = add(fee_base, maker_fee)?;
                }
                self.mark(mb);
                self.mark(mq);
                remaining -= amount;
                let maker_left = maker_left - amount;
                let o = &mut self.slab[r.idx as usize];
                self.bigs.set(&mut o.remaining, maker_left);
                let maker_hash = self.hashes[o.hid as usize].clone();
                let level = self.markets[mi as usize].side_mut(maker_side).get_mut(&key).expect("level");
                level.total = sub(level.total, amount)?;
                events.push(Ev::Fill(Box::new(FillEv { fill_index, market: market_id, maker_hash, maker_trader, taker_hash: H::Cmd, taker_trader: trader, taker_side, price, amount, quote: quote_amount, maker_fee, taker_fee, maker_left, taker_left: remaining })));
                fill_index += 1;
                filled_here = true;
                if maker_left.is_zero() {
                    level.orders.pop_front();
                    level.live -= 1;
                    self.forget(r);
                    self.release(r);
                }
            }
            let market = &mut self.markets[mi as usize];
            let levels = market.side_mut(maker_side);
            if levels.get(&key).is_some_and(|l| l.live == 0) {
                levels.remove(&key);
            }
            if filled_here {
                market.last_price = price;
                if breaker && tripped.is_none() {
                    tripped = market.record(now, price);
                }
            }
        }
        if let Some((tb, tq)) = t_cells {
            self.mark(tb);
            self.mark(tq);
            if !fee_base.is_zero() {
                let f = self.cell(self.fee_recipient, base);
                let c = &mut self.cells[f as usize];
                c.total = add(c.total, fee_base)?;
                self.mark(f);
            }
            if !fee_quote.is_zero() {
                let f = self.cell(self.fee_recipient, quote);
                let c = &mut self.cells[f as usize];
                c.total = add(c.total, fee_quote)?;
                self.mark(f);
            }
        }
        if let Some((low, high)) = tripped {
            let market = &mut self.markets[mi as usize];
            let old = market.state;
            market.state = MState::CancelOnly;
            market.highs.clear();
            market.lows.clear();
            events.push(Ev::MarketState { market: market_id, old, new: MState::CancelOnly, reason: "circuit_breaker" });
            events.push(Ev::Risk {
                market: market_id,
                kind: "circuit_breaker",
                msg: format!("price moved from {low} to {high} within {}s (limit {} bps)", window_s, move_bps),
                reference: low,
                price: high,
            });
        }
        Ok(remaining)
    }

    /// Drop a closed order from the per-trader indexes (the book is the caller's job).
    fn forget(&mut self, r: ORef) {
        let o = &mut self.slab[r.idx as usize];
        o.open = false;
        let trader = o.trader;
        self.unindex_open(trader, r.idx);
        if let Some(coid) = self.coids.get(&r.idx)
            && let Some(ids) = self.client_ids.get_mut(&trader)
        {
            ids.remove(coid);
            if ids.is_empty() {
                self.client_ids.remove(&trader);
            }
        }
    }

    /// Cancel an order already taken out of its level: release its funds, tell the world.
    fn close(&mut self, r: ORef, reason: Reason, events: &mut Vec<Ev>) -> R<()> {
        self.forget(r);
        let o = &self.slab[r.idx as usize];
        let reserved = self.reserved(o)?;
        let token = self.lock_token(o);
        let (trader, hash, remaining) = (o.trader, self.hash_of(o).clone(), self.remaining(o));
        let market = self.markets[o.market as usize].spec.market_id;
        let c = self.cell(trader, token);
        let bal = &mut self.cells[c as usize];
        bal.locked = sub(bal.locked, reserved)?;
        self.mark(c);
        events.push(Ev::Cancelled { hash: H::Own(hash), trader, market, reason, remaining });
        self.release(r);
        Ok(())
    }

    /// Take an open order's remaining out of its level (OrderBook.remove).
    fn unbook(&mut self, r: ORef) -> R<()> {
        let o = &self.slab[r.idx as usize];
        let (side, key, remaining) = (o.side, level_key(o.side, self.price(o)), self.remaining(o));
        let levels = self.markets[o.market as usize].side_mut(side);
        let level = levels.get_mut(&key).ok_or_else(|| Fault("order's level missing".into()))?;
        level.total = sub(level.total, remaining)?;
        level.live -= 1;
        if level.live == 0 {
            levels.remove(&key);
        } else if level.orders.len() > 2 * level.live as usize + 16 {
            let slab = &self.slab;
            level.orders.retain(|x| {
                let o = &slab[x.idx as usize];
                o.generation == x.generation && o.open && *x != r
            });
        }
        Ok(())
    }

    fn cancel_resting(&mut self, r: ORef, reason: Reason, events: &mut Vec<Ev>) -> R<()> {
        self.unbook(r)?;
        self.slab[r.idx as usize].open = false;
        self.close(r, reason, events)
    }

    fn cancel(&mut self, h: &[u8], trader: Sym, events: &mut Vec<Ev>) -> R<()> {
        let Some(r) = self.find_open(trader, h) else {
            // Unknown, closed, or someone else's: the same answer, so nothing leaks.
            events.push(Ev::CancelRejected { trader });
            return Ok(());
        };
        self.unbook(r)?;
        let o = &self.slab[r.idx as usize];
        let (remaining, reserved, token) = (self.remaining(o), self.reserved(o)?, self.lock_token(o));
        let market = self.markets[o.market as usize].spec.market_id;
        self.forget(r);
        self.release(r);
        let c = self.cell_get(trader, token).ok_or_else(|| Fault("open order without a balance".into()))?;
        let bal = &mut self.cells[c as usize];
        bal.locked = sub(bal.locked, reserved)?;
        events.push(Ev::Cancelled { hash: H::Cmd, trader, market, reason: Reason::User, remaining });
        events.push(self.balance_ev(c));
        Ok(())
    }

    /// The trader's open orders in (nonce, hash) order, as bulk cancels take them.
    fn sorted_orders(&self, trader: Sym) -> Vec<ORef> {
        let mut v: Vec<ORef> = self.open_of(trader);
        v.sort_by(|a, b| {
            let (x, y) = (&self.slab[a.idx as usize], &self.slab[b.idx as usize]);
            (x.nonce, self.hash_of(x)).cmp(&(y.nonce, self.hash_of(y)))
        });
        v
    }

    fn cancel_all(&mut self, trader: Sym, market: Option<Sym>, nonce_below: &PInt, events: &mut Vec<Ev>) -> R<()> {
        if let Some(m) = market
            && !self.market_index.contains_key(&m)
        {
            events.push(Ev::CmdRejected { command: "CancelAll", code: Code::UnknownMarket, msg: self.syms.s(m).into() });
            return Ok(());
        }
        let nb = match nonce_below.val() {
            Some(v) if v <= U256::from(U64_MAX_PLUS_1) => v.as_limbs()[0] as u128 | ((v.as_limbs()[1] as u128) << 64),
            _ => {
                events.push(Ev::CmdRejected { command: "CancelAll", code: Code::InvalidRequest, msg: "nonce_below must be within 0..2**64".into() });
                return Ok(());
            }
        };
        let key = market.unwrap_or(self.empty);
        let bar = self.cancel_bars.entry(trader).or_default().entry(key).or_insert(0);
        *bar = (*bar).max(nb); // the bar only rises
        let mi = market.map(|m| self.market_index[&m]);
        let doomed: Vec<ORef> = self
            .sorted_orders(trader)
            .into_iter()
            .filter(|r| {
                let o = &self.slab[r.idx as usize];
                (o.nonce as u128) < nb && mi.is_none_or(|m| o.market == m)
            })
            .collect();
        for &r in &doomed {
            self.cancel_resting(r, Reason::CancelAll, events)?;
        }
        events.push(Ev::CancelAllApplied { trader, market, nonce_below: nb, cancelled: doomed.len() });
        self.flush(events);
        Ok(())
    }

    fn sweep(&mut self, now: i128, events: &mut Vec<Ev>) -> R<()> {
        while let Some(Reverse((expiry, _, _))) = self.expiries.peek() {
            if (*expiry as i128) > now {
                break;
            }
            let Reverse((_, _, r)) = self.expiries.pop().expect("peeked");
            if self.get(r).is_some() {
                self.cancel_resting(r, Reason::Expired, events)?;
            }
        }
        // Then the switches that are due, each in (time, trader[, connection]) order (the
        // reference model's: by string, not by symbol number).
        let mut due: Vec<(u64, Sym)> = self.cancel_schedules.iter().filter(|(_, (t, _))| *t != 0 && (*t as i128) <= now).map(|(k, (t, _))| (*t, *k)).collect();
        due.sort_by(|a, b| (a.0, self.syms.s(a.1)).cmp(&(b.0, self.syms.s(b.1))));
        for (_, trader) in due {
            if let Some(e) = self.cancel_schedules.get_mut(&trader) {
                e.0 = 0;
            }
            self.cancel_every_order(trader, Reason::Scheduled, events)?;
        }
        let mut timers: Vec<(u64, Sym, Box<str>)> = self.disconnect_timers.iter().filter(|(_, d)| (**d as i128) <= now).map(|((t, c), d)| (*d, *t, c.clone())).collect();
        timers.sort_by(|a, b| (a.0, self.syms.s(a.1), &a.2).cmp(&(b.0, self.syms.s(b.1), &b.2)));
        for (_, trader, conn) in timers {
            self.disconnect_timers.remove(&(trader, conn));
            self.cancel_every_order(trader, Reason::Disconnect, events)?;
        }
        self.flush(events);
        Ok(())
    }

    fn cancel_every_order(&mut self, trader: Sym, reason: Reason, events: &mut Vec<Ev>) -> R<()> {
        for r in self.sorted_orders(trader) {
            self.cancel_resting(r, reason, events)?;
        }
        Ok(())
    }

    fn schedule_cancel(&mut self, now: i128, trader: Sym, time: &PInt, nonce: &PInt, events: &mut Vec<Ev>) {
        let reject = |events: &mut Vec<Ev>, code: Code, msg: String| events.push(Ev::CmdRejected { command: "ScheduleCancel", code, msg });
        let (Some(time), Some(nonce)) = (time.u64(), nonce.u64()) else {
            return reject(events, Code::InvalidRequest, "time and nonce must fit in uint64".into());
        };
        if let Some(&(_, last)) = self.cancel_schedules.get(&trader)
            && nonce <= last
        {
            return reject(events, Code::NonceReused, format!("nonce {nonce} is not above the last ScheduleCancel nonce {last}"));
        }
        if time != 0 && (time as i128) <= now {
            return reject(events, Code::ScheduleTooSoon, format!("time {time} is not after the engine's time {now}"));
        }
        self.cancel_schedules.insert(trader, (time, nonce));
        events.push(Ev::CancelScheduled { trader, time, nonce });
    }

    fn arm_disconnect(&mut self, now: i128, trader: Sym, conn: &str, deadline: &PInt, events: &mut Vec<Ev>) {
        let deadline = match deadline.u64() {
            Some(d) if d == 0 || (d as i128) > now => d,
            _ => {
                let msg = "deadline must be 0 or after the engine's time, within uint64".into();
                events.push(Ev::CmdRejected { command: "ArmCancelOnDisconnect", code: Code::InvalidRequest, msg });
                return;
            }
        };
        let key = (trader, Box::<str>::from(conn));
        if deadline != 0 {
            self.disconnect_timers.insert(key, deadline);
        } else {
            self.disconnect_timers.remove(&key);
        }
    }

    fn cancel_on_disconnect(&mut self, trader: Sym, conn: &str, events: &mut Vec<Ev>) -> R<()> {
        if self.disconnect_timers.remove(&(trader, Box::<str>::from(conn))).is_none() {
            return Ok(());
        }
        self.cancel_every_order(trader, Reason::Disconnect, events)?;
        self.flush(events);
        Ok(())
    }

    fn freeze(&mut self, trader: Sym, events: &mut Vec<Ev>) -> R<()> {
        self.frozen.insert(trader);
        for r in self.sorted_orders(trader) {
            self.cancel_resting(r, Reason::Frozen, events)?;
        }
        events.push(Ev::Frozen { trader });
        self.flush(events);
        Ok(())
    }

    // ------------------------------------------------------------------ funds

    fn credit(&mut self, trader: Sym, token: Sym, amount: &PInt, events: &mut Vec<Ev>) -> R<()> {
        let reject = |events: &mut Vec<Ev>, msg: &str| events.push(Ev::CmdRejected { command: "Credit", code: Code::InvalidRequest, msg: msg.into() });
        if !amount.is_pos() {
            reject(events, "amount <= 0");
            return Ok(());
        }
        let supply = self.supply.get(&token).copied().unwrap_or(U256::ZERO);
        let Some(new_supply) = amount.val().and_then(|a| supply.checked_add(a)) else {
            reject(events, "the token's total would exceed 2**256-1");
            return Ok(());
        };
        let amount = amount.val().expect("checked");
        self.supply.insert(token, new_supply);
        let c = self.cell(trader, token);
        let bal = &mut self.cells[c as usize];
        bal.total = add(bal.total, amount)?;
        events.push(self.balance_ev(c));
        Ok(())
    }

    fn debit(&mut self, trader: Sym, token: Sym, amount: &PInt, wid: Option<&str>, events: &mut Vec<Ev>) -> R<()> {
        let name = "Debit";
        if !amount.is_pos() {
            events.push(Ev::CmdRejected { command: name, code: Code::InvalidRequest, msg: "amount <= 0".into() });
            return Ok(());
        }
        let c = self.cell_get(trader, token);
        let mut reserved = U256::ZERO;
        if let Some(wid) = wid {
            match self.withdrawals.get(wid) {
                Some(w) if w.0 == trader && w.1 == token => reserved = w.2,
                _ => {
                    let msg = format!("no reservation {wid} for this trader and token");
                    events.push(Ev::CmdRejected { command: name, code: Code::InvalidRequest, msg });
                    return Ok(());
                }
            }
        }
        let enough = match (c, amount.val()) {
            (Some(c), Some(a)) => {
                let b = &self.cells[c as usize];
                wide(b.total) + wide(reserved) >= wide(b.locked) + wide(a)
            }
            _ => false,
        };
        if !enough {
            // The chain already paid out more than the engine can account for: refuse and let
            // reconciliation decide rather than drive a balance negative.
            events.push(Ev::CmdRejected { command: name, code: Code::InsufficientBalance, msg: "debit > free".into() });
            return Ok(());
        }
        let (c, amount) = (c.expect("checked"), amount.val().expect("checked"));
        if let Some(wid) = wid {
            self.withdrawals.remove(wid);
            let bal = &mut self.cells[c as usize];
            bal.locked = sub(bal.locked, reserved)?;
        }
        let bal = &mut self.cells[c as usize];
        bal.total = sub(bal.total, amount)?;
        let s = self.supply.entry(token).or_insert(U256::ZERO);
        *s = sub(*s, amount)?;
        events.push(self.balance_ev(c));
        Ok(())
    }

    fn reserve(&mut self, trader: Sym, token: Sym, amount: &PInt, wid: &str, events: &mut Vec<Ev>) -> R<()> {
        let name = "ReserveWithdrawal";
        if !amount.is_pos() || self.withdrawals.contains_key(wid) {
            events.push(Ev::CmdRejected { command: name, code: Code::InvalidRequest, msg: "amount <= 0 or withdrawal id in use".into() });
            return Ok(());
        }
        let c = self.cell_get(trader, token);
        let ok = match (c, amount.val()) {
            (Some(c), Some(a)) => {
                let b = &self.cells[c as usize];
                b.total.saturating_sub(b.locked) >= a && b.total >= b.locked
            }
            _ => false,
        };
        if !ok {
            events.push(Ev::CmdRejected { command: name, code: Code::InsufficientBalance, msg: "not available".into() });
            return Ok(());
        }
        let (c, amount) = (c.expect("checked"), amount.val().expect("checked"));
        let bal = &mut self.cells[c as usize];
        bal.locked = add(bal.locked, amount)?;
        self.withdrawals.insert(wid.into(), (trader, token, amount));
        events.push(Ev::WReserved { wid: wid.into(), trader, token, amount });
        events.push(self.balance_ev(c));
        Ok(())
    }

    fn release_withdrawal(&mut self, wid: &str, events: &mut Vec<Ev>) -> R<()> {
        let Some((trader, token, amount)) = self.withdrawals.remove(wid) else {
            events.push(Ev::CmdRejected { command: "ReleaseWithdrawal", code: Code::InvalidRequest, msg: format!("no reservation {wid}") });
            return Ok(());
        };
        let c = self.cell(trader, token);
        let bal = &mut self.cells[c as usize];
        bal.locked = sub(bal.locked, amount)?;
        events.push(Ev::WReleased { wid: wid.into(), trader, token, amount });
        events.push(self.balance_ev(c));
        Ok(())
    }

    /// Undo a fill the chain refused for good (see Engine._revert_fill in the reference model).
    fn revert(&mut self, cmd: &Cmd, events: &mut Vec<Ev>) -> R<()> {
        let Cmd::Revert { fill_seq, fill_index, market, maker_hash, maker_trader, taker_hash, taker_trader, taker_side, price, amount, quote_amount, maker_fee, taker_fee } = cmd else {
            unreachable!()
        };
        let name = "RevertFill";
        let key = (*fill_seq, *fill_index);
        if self.reverted.contains(&key) {
            let msg = format!("fill {fill_seq}/{fill_index} already reverted");
            events.push(Ev::CmdRejected { command: name, code: Code::FillAlreadyReverted, msg });
            return Ok(());
        }
        let Some(&mi) = self.market_index.get(market) else {
            events.push(Ev::CmdRejected { command: name, code: Code::UnknownMarket, msg: self.syms.s(*market).into() });
            return Ok(());
        };
        let all = [amount, quote_amount, maker_fee, taker_fee, price];
        if all.iter().any(|x| matches!(x, PInt::Neg)) || matches!(amount, PInt::Val(v) if v.is_zero()) || all.iter().any(|x| matches!(x, PInt::Big)) {
            events.push(Ev::CmdRejected { command: name, code: Code::InvalidRequest, msg: "bad fill amounts".into() });
            return Ok(());
        }
        let v = |x: &PInt| wide(x.val().expect("checked"));
        let (amount_w, quote_w, mfee, tfee) = (v(amount), v(quote_amount), v(maker_fee), v(taker_fee));
        let spec = &self.markets[mi as usize].spec;
        let (base, quote) = (spec.base, spec.quote);
        let (buyer, seller, buyer_fee, seller_fee) =
            if *taker_side == Side::Buy { (*taker_trader, *maker_trader, tfee, mfee) } else { (*maker_trader, *taker_trader, mfee, tfee) };
        // One signed delta per (trader, token), as (plus, minus), in first-seen order.
        let mut deltas: Vec<((Sym, Sym), U512, U512)> = Vec::with_capacity(6);
        let terms = [
            ((buyer, quote), quote_w, U512::ZERO),
            ((buyer, base), buyer_fee, amount_w),
            ((seller, base), amount_w, U512::ZERO),
            ((seller, quote), seller_fee, quote_w),
            ((self.fee_recipient, base), U512::ZERO, buyer_fee),
            ((self.fee_recipient, quote), U512::ZERO, seller_fee),
        ];
        for (k, plus, minus) in terms {
            match deltas.iter_mut().find(|d| d.0 == k) {
                Some(d) => {
                    d.1 += plus;
                    d.2 += minus;
                }
                None => deltas.push((k, plus, minus)),
            }
        }
        for d in deltas.iter_mut() {
            // normalise: only one of plus / minus is non-zero
            let m = d.1.min(d.2);
            d.1 -= m;
            d.2 -= m;
        }
        for &((trader, token), plus, minus) in &deltas {
            if minus.is_zero() {
                continue;
            }
            let _ = plus;
            let total = self.cell_get(trader, token).map(|c| self.cells[c as usize].total).unwrap_or(U256::ZERO);
            // What stays locked whatever orders are cancelled: withdrawal reservations.
            let mut held = U512::ZERO;
            for (t, tok, a) in self.withdrawals.values() {
                if *t == trader && *tok == token {
                    held += wide(*a);
                }
            }
            if wide(total) < minus + held {
                let msg = format!("{} no longer holds {} of {} (spent since the fill)", self.syms.s(trader), minus, self.syms.s(token));
                events.push(Ev::CmdRejected { command: name, code: Code::InsufficientBalance, msg });
                return Ok(());
            }
        }
        // Accepted: from here on the state changes.
        self.reverted.insert(key);
        let mut out: Vec<Ev> = Vec::new();
        for &((trader, token), plus, minus) in &deltas {
            if plus.is_zero() && minus.is_zero() {
                continue;
            }
            let c = self.cell(trader, token);
            let bal = &mut self.cells[c as usize];
            let t = (wide(bal.total) + plus).checked_sub(minus).ok_or_else(|| Fault("revert below zero".into()))?;
            bal.total = narrow(t).ok_or_else(|| Fault("revert above 2**256-1".into()))?;
            self.mark(c);
        }
        for &((trader, token), _, minus) in &deltas {
            let c = self.cell(trader, token);
            let b = &self.cells[c as usize];
            if !minus.is_zero() && b.locked > b.total {
                self.cancel_backed_by(trader, token, c, &mut out)?;
            }
        }
        let amount = amount.val().expect("checked");
        let maker_left = self.offer_again(*maker_trader, maker_hash, amount, &mut out)?;
        let taker_left = self.offer_again(*taker_trader, taker_hash, amount, &mut out)?;
        events.push(Ev::FillReverted(Box::new(RevertEv {
            fill_seq: *fill_seq,
            fill_index: *fill_index,
            market: *market,
            maker_hash: (*maker_hash).into(),
            maker_trader: *maker_trader,
            taker_hash: (*taker_hash).into(),
            taker_trader: *taker_trader,
            amount,
            maker_left,
            taker_left,
        })));
        events.append(&mut out);
        self.flush(events);
        Ok(())
    }

    fn cancel_backed_by(&mut self, trader: Sym, token: Sym, c: u32, events: &mut Vec<Ev>) -> R<()> {
        for r in self.sorted_orders(trader) {
            let b = &self.cells[c as usize];
            if b.locked <= b.total {
                return Ok(());
            }
            if self.lock_token(&self.slab[r.idx as usize]) == token {
                self.cancel_resting(r, Reason::FillReverted, events)?;
            }
        }
        Ok(())
    }

    fn offer_again(&mut self, trader: Sym, h: &[u8], amount: U256, events: &mut Vec<Ev>) -> R<Option<U256>> {
        let Some(r) = self.find_open(trader, h) else {
            return Ok(None);
        };
        let o = &self.slab[r.idx as usize];
        let is_buy = o.side == Side::Buy;
        let token = self.lock_token(o);
        let (price, side, remaining, total_amount, mi) = (self.price(o), o.side, self.remaining(o), self.amount(o), o.market);
        let c = self.cell(trader, token);
        let need = if is_buy { mul_div_wide(amount, price, PRICE_SCALE) } else { wide(amount) };
        let b = &self.cells[c as usize];
        if wide(remaining) + wide(amount) > wide(total_amount) || wide(b.total) < wide(b.locked) + need {
            self.cancel_resting(r, Reason::FillReverted, events)?;
            return Ok(None);
        }
        let need = narrow(need).ok_or_else(|| Fault("need above 2**256-1".into()))?;
        let new_remaining = add(remaining, amount)?;
        let o = &mut self.slab[r.idx as usize];
        self.bigs.set(&mut o.remaining, new_remaining);
        let level = self.markets[mi as usize].side_mut(side).get_mut(&level_key(side, price)).ok_or_else(|| Fault("order's level missing".into()))?;
        level.total = add(level.total, amount)?;
        let b = &mut self.cells[c as usize];
        b.locked = add(b.locked, need)?;
        self.mark(c);
        Ok(Some(new_remaining))
    }

    // ------------------------------------------------------------------ markets

    fn spec_problem(&self, s: &SpecIn) -> Result<Spec, String> {
        let all = [&s.tick, &s.lot, &s.min_amount, &s.max_amount, &s.max_notional, &s.band_bps, &s.move_bps, &s.maker_bps, &s.taker_bps];
        if all.iter().any(|x| matches!(x, PInt::Big)) || matches!(s.window_s, PInt::Big) || matches!(s.window_s, PInt::Val(v) if v > U256::from(u64::MAX)) {
            return Err("settings must fit in uint256 (the breaker window in uint64)".into());
        }
        if !s.tick.is_pos() || !s.lot.is_pos() || s.min_amount == PInt::Neg {
            return Err("tick_size and lot_size must be positive, min_amount non-negative".into());
        }
        let (tick, lot) = (s.tick.val().expect("pos"), s.lot.val().expect("pos"));
        if !((wide(tick) * wide(lot)) % U512::from(PRICE_SCALE)).is_zero() {
            return Err("lot_size * tick_size must be a multiple of 10**18 so quote amounts are exact".into());
        }
        let fee_ok = |f: &PInt| matches!(f, PInt::Val(v) if *v <= U256::from(100u64));
        if !(fee_ok(&s.maker_bps) && fee_ok(&s.taker_bps)) {
            return Err("fees must be within 0..100 bps".into());
        }
        if [&s.max_amount, &s.max_notional, &s.band_bps].iter().any(|x| **x == PInt::Neg) {
            return Err("limits must be non-negative (0 = off)".into());
        }
        if s.move_bps == PInt::Neg || s.window_s == PInt::Neg {
            return Err("circuit breaker settings must be non-negative (0 = off)".into());
        }
        if s.base == s.quote {
            return Err("base and quote tokens must differ".into());
        }
        let v = |x: &PInt| x.val().expect("checked");
        Ok(Spec {
            market_id: s.market_id,
            base: s.base,
            quote: s.quote,
            tick,
            lot,
            min_amount: v(&s.min_amount),
            maker_bps: v(&s.maker_bps).as_limbs()[0],
            taker_bps: v(&s.taker_bps).as_limbs()[0],
            state: s.state,
            max_amount: v(&s.max_amount),
            max_notional: v(&s.max_notional),
            band_bps: v(&s.band_bps),
            move_bps: v(&s.move_bps),
            window_s: v(&s.window_s).as_limbs()[0],
        })
    }

    fn add_market(&mut self, s: &SpecIn, events: &mut Vec<Ev>) {
        let mut result = self.spec_problem(s);
        if result.is_ok() && self.market_index.contains_key(&s.market_id) {
            result = Err(format!("market {} already listed", self.syms.s(s.market_id)));
        }
        match result {
            Err(msg) => events.push(Ev::CmdRejected { command: "AddMarket", code: Code::InvalidRequest, msg }),
            Ok(spec) => {
                self.add_market_spec(spec);
                events.push(Ev::MarketAdded { market: s.market_id });
            }
        }
    }

    pub fn add_market_spec(&mut self, spec: Spec) -> u32 {
        let id = spec.market_id;
        self.markets.push(Market::new(spec));
        let mi = (self.markets.len() - 1) as u32;
        self.market_index.insert(id, mi);
        mi
    }

    fn set_state(&mut self, market: Sym, state: MState, events: &mut Vec<Ev>) {
        let Some(&mi) = self.market_index.get(&market) else {
            events.push(Ev::CmdRejected { command: "SetMarketState", code: Code::UnknownMarket, msg: self.syms.s(market).into() });
            return;
        };
        let m = &mut self.markets[mi as usize];
        let old = m.state;
        if old == state {
            return;
        }
        m.state = state;
        events.push(Ev::MarketState { market, old, new: state, reason: "operator" });
    }

    /// How much of `wanted` the crossing liquidity could fill, ignoring own and expired orders.
    fn takeable(&self, levels: &Levels, is_buy: bool, limit: U256, trader: Sym, now: i128, wanted: U512) -> U512 {
        let mut found = U512::ZERO;
        for level in levels.values() {
            if if is_buy { level.price > limit } else { level.price < limit } {
                break;
            }
            for r in &level.orders {
                if let Some(o) = self.get(*r)
                    && o.trader != trader
                    && !(o.expiry != 0 && (o.expiry as i128) <= now)
                {
                    found += wide(self.remaining(o));
                    if found >= wanted {
                        return found;
                    }
                }
            }
        }
        found
    }

    // ------------------------------------------------------------------ invariants

    /// validate_invariants of the reference model; Err(message) if a rule is broken.
    pub fn check(&self) -> Result<(), String> {
        fn must(c: bool, m: &str) -> Result<(), String> {
            if c { Ok(()) } else { Err(m.to_string()) }
        }
        let mut expected: HashMap<(Sym, Sym), U512> = HashMap::default();
        let mut in_books: HashMap<&[u8], ORef> = HashMap::default();
        for (mi, market) in self.markets.iter().enumerate() {
            let spec = &market.spec;
            if let (Some(b), Some(a)) = (market.best(Side::Buy), market.best(Side::Sell)) {
                must(b < a, "book crossed")?;
            }
            for side in [Side::Buy, Side::Sell] {
                for (key, level) in market.side(side) {
                    must(*key == level_key(side, level.price), "level key")?;
                    let live: Vec<ORef> = level.orders.iter().copied().filter(|r| self.get(*r).is_some()).collect();
                    must(live.len() == level.live as usize && level.live > 0, "level live count")?;
                    let sum: U512 = live.iter().map(|r| wide(self.remaining(&self.slab[r.idx as usize]))).fold(U512::ZERO, |a, b| a + b);
                    must(wide(level.total) == sum, "level total")?;
                    for r in live {
                        let o = &self.slab[r.idx as usize];
                        must(o.side == side && self.price(o) == level.price, "order in wrong level")?;
                        must(o.market as usize == mi, "order in wrong market")?;
                        let remaining = self.remaining(o);
                        must(!remaining.is_zero() && remaining <= self.amount(o), "remaining out of range")?;
                        must(!in_books.contains_key(&**self.hash_of(o)), "order twice in book")?;
                        in_books.insert(&**self.hash_of(o), r);
                        let token = if side == Side::Buy { spec.quote } else { spec.base };
                        *expected.entry((o.trader, token)).or_insert(U512::ZERO) += wide(self.reserved(o).map_err(|e| e.0)?);
                    }
                }
            }
        }
        let scheduled: HashSet<ORef> = self.expiries.iter().map(|e| e.0.2).collect();
        let mut indexed = 0usize;
        for (trader, orders) in &self.open_orders {
            for &idx in orders.iter() {
                indexed += 1;
                let r = ORef { idx, generation: self.slab[idx as usize].generation };
                let o = self.get(r).ok_or("index entry")?;
                let h = self.hash_of(o);
                must(o.trader == *trader && self.find_open(*trader, h) == Some(r), "index entry")?;
                must(in_books.get(&**h) == Some(&r), "indexed order not in book")?;
                let noted = self.nonces.get(trader).and_then(|n| n.get(&o.nonce)).map(|&i| &self.hashes[i as usize]);
                must(noted == Some(h), "open order nonce not recorded")?;
                must(o.has_coid == self.coids.contains_key(&idx), "client order id table")?;
                if let Some(coid) = self.coid(idx) {
                    must(self.client_ids.get(trader).and_then(|m| m.get(coid)) == Some(h), "client order id index")?;
                }
                if o.expiry != 0 {
                    must(scheduled.contains(&r), "expiring order not scheduled")?;
                }
            }
        }
        must(self.coids.len() <= indexed, "client order id of a closed order")?;
        must(indexed == in_books.len(), "book order missing from index")?;
        for (trader, ids) in &self.client_ids {
            for h in ids.values() {
                must(self.find_open(*trader, h).is_some(), "client id of a closed order")?;
            }
        }
        for (trader, token, amount) in self.withdrawals.values() {
            must(!amount.is_zero(), "empty withdrawal reservation")?;
            *expected.entry((*trader, *token)).or_insert(U512::ZERO) += wide(*amount);
        }
        let mut supply: HashMap<Sym, U512> = HashMap::default();
        for cell in &self.cells {
            must(cell.locked <= cell.total, "locked above total")?;
            let want = expected.remove(&(cell.trader, cell.token)).unwrap_or(U512::ZERO);
            must(wide(cell.locked) == want, "locked differs from reservations")?;
            *supply.entry(cell.token).or_insert(U512::ZERO) += wide(cell.total);
        }
        must(expected.values().all(|v| v.is_zero()), "reservation without balance")?;
        for (token, s) in &supply {
            must(wide(self.supply.get(token).copied().unwrap_or(U256::ZERO)) == *s, "token supply differs from balances")?;
        }
        Ok(())
    }

    pub fn recompute_supply(&mut self) -> R<()> {
        self.supply.clear();
        for i in 0..self.cells.len() {
            let (token, total) = (self.cells[i].token, self.cells[i].total);
            let s = self.supply.entry(token).or_insert(U256::ZERO);
            *s = add(*s, total)?;
        }
        Ok(())
    }
}
