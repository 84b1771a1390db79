//! Snapshots: byte for byte the canonical JSON of `backend/matching/snapshot.py` (version 1),
//! so that both engines have the same `state_hash()` and load each other's snapshots.

use std::collections::VecDeque;
use std::fmt::Write;

use blake2::Blake2b;
use blake2::digest::Digest;
use blake2::digest::consts::U32;
use serde_json::Value;

use crate::core::*;
use crate::num::*;

pub const SNAPSHOT_VERSION: u64 = 1;

type Blake2b256 = Blake2b<U32>;

/// `{"version":1,"last_seq":N,`: all that differs between a snapshot and the hashed encoding.
fn canonical_head(out: &mut String, last_seq: i128) {
    let _ = write!(out, "{{\"version\":{SNAPSHOT_VERSION},\"last_seq\":{last_seq},");
}

/// json.dumps(..., ensure_ascii=True) of one string.
fn jstr(out: &mut String, s: &str) {
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    let _ = write!(out, "\\u{:04x}", unit);
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn hex(out: &mut String, b: &[u8]) {
    out.push('"');
    for x in b {
        let _ = write!(out, "{:02x}", x);
    }
    out.push('"');
}

impl Engine {
    fn order_row(&self, out: &mut String, idx: u32, o: &Order) {
        out.push('[');
        hex(out, self.hash_of(o));
        out.push(',');
        jstr(out, self.syms.s(o.trader));
        let _ = write!(out, ",{},{},{},{},{},{},{},", o.side as u8, self.price(o), self.amount(o), self.remaining(o), o.tif as u8, o.nonce, o.expiry);
        match self.coid(idx) {
            Some(c) => jstr(out, c),
            None => out.push_str("null"),
        }
        out.push(']');
    }

    fn side_rows(&self, out: &mut String, levels: &Levels) {
        out.push('[');
        let mut first = true;
        for level in levels.values() {
            for r in &level.orders {
                if let Some(o) = self.get(*r) {
                    if !first {
                        out.push(',');
                    }
                    first = false;
                    self.order_row(out, r.idx, o);
                }
            }
        }
        out.push(']');
    }

    fn market_row(&self, out: &mut String, m: &Market) {
        let s = &m.spec;
        out.push_str("[[");
        jstr(out, self.syms.s(s.market_id));
        out.push(',');
        jstr(out, self.syms.s(s.base));
        out.push(',');
        jstr(out, self.syms.s(s.quote));
        let _ = write!(out, ",{},{},{},{},{},", s.tick, s.lot, s.min_amount, s.maker_bps, s.taker_bps);
        jstr(out, s.state.name());
        let _ = write!(out, ",{},{},{},{},{}],", s.max_amount, s.max_notional, s.band_bps, s.move_bps, s.window_s);
        jstr(out, m.state.name());
        let _ = write!(out, ",{},", m.last_price);
        for dq in [&m.highs, &m.lows] {
            out.push('[');
            for (i, (t, p)) in dq.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let _ = write!(out, "[{t},{p}]");
            }
            out.push_str("],");
        }
        self.side_rows(out, &m.bids);
        out.push(',');
        self.side_rows(out, &m.asks);
        out.push(']');
    }

    /// The canonical encoding; `last_seq` is 0 for the state hash.
    pub fn canonical(&self, last_seq: i128) -> String {
        let mut out = String::with_capacity(4096);
        canonical_head(&mut out, last_seq);
        self.canonical_rest(out)
    }

    /// The snapshot (`canonical(last_seq)`) and the state hash (blake2b-256 of
    /// `canonical(0)`, as `state_hash()`) from one encoding: the two differ in the head only.
    pub fn snapshot_and_hash(&self) -> (String, [u8; 32]) {
        let mut out = String::with_capacity(4096);
        canonical_head(&mut out, self.last_seq);
        let head = out.len();
        let out = self.canonical_rest(out);
        let mut zero = String::new();
        canonical_head(&mut zero, 0);
        let digest = Blake2b256::new().chain_update(zero.as_bytes()).chain_update(&out.as_bytes()[head..]).finalize();
        (out, digest.into())
    }

    /// Everything after the head, from `"fee_recipient":` on.
    fn canonical_rest(&self, mut out: String) -> String {
        out.push_str("\"fee_recipient\":");
        jstr(&mut out, self.syms.s(self.fee_recipient));
        out.push_str(",\"markets\":[");
        let mut ms: Vec<&Market> = self.markets.iter().collect();
        ms.sort_by(|a, b| self.syms.s(a.spec.market_id).cmp(self.syms.s(b.spec.market_id)));
        for (i, m) in ms.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            self.market_row(&mut out, m);
        }
        out.push_str("],\"balances\":[");
        let mut cells: Vec<&Cell> = self.cells.iter().collect();
        cells.sort_by(|a, b| (self.syms.s(a.trader), self.syms.s(a.token)).cmp(&(self.syms.s(b.trader), self.syms.s(b.token))));
        for (i, c) in cells.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push('[');
            jstr(&mut out, self.syms.s(c.trader));
            out.push(',');
            jstr(&mut out, self.syms.s(c.token));
            let _ = write!(out, ",{},{}]", c.total, c.locked);
        }
        out.push_str("],\"nonces\":[");
        let mut traders: Vec<(&str, Sym)> = self.nonces.keys().map(|t| (self.syms.s(*t), *t)).collect();
        traders.sort();
        for (i, (name, t)) in traders.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push('[');
            jstr(&mut out, name);
            out.push_str(",[");
            let mut rows: Vec<(&u64, &Hash)> = self.nonces[t].iter().map(|(n, &i)| (n, &self.hashes[i as usize])).collect();
            rows.sort();
            for (j, (n, h)) in rows.iter().enumerate() {
                if j > 0 {
                    out.push(',');
                }
                let _ = write!(out, "[{n},");
                hex(&mut out, h);
                out.push(']');
            }
            out.push_str("]]");
        }
        out.push_str("],\"cancel_bars\":[");
        let mut traders: Vec<(&str, Sym)> = self.cancel_bars.keys().map(|t| (self.syms.s(*t), *t)).collect();
        traders.sort();
        for (i, (name, t)) in traders.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push('[');
            jstr(&mut out, name);
            out.push_str(",[");
            let mut rows: Vec<(&str, u128)> = self.cancel_bars[t].iter().map(|(m, b)| (self.syms.s(*m), *b)).collect();
            rows.sort();
            for (j, (m, b)) in rows.iter().enumerate() {
                if j > 0 {
                    out.push(',');
                }
                out.push('[');
                jstr(&mut out, m);
                let _ = write!(out, ",{b}]");
            }
            out.push_str("]]");
        }
        out.push_str("],\"frozen\":[");
        let mut frozen: Vec<&str> = self.frozen.iter().map(|t| self.syms.s(*t)).collect();
        frozen.sort();
        for (i, t) in frozen.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            jstr(&mut out, t);
        }
        out.push_str("],\"withdrawals\":[");
        let mut ws: Vec<(&Box<str>, &(Sym, Sym, U256))> = self.withdrawals.iter().collect();
        ws.sort_by(|a, b| a.0.cmp(b.0));
        for (i, (wid, (t, tok, a))) in ws.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push('[');
            jstr(&mut out, wid);
            out.push(',');
            jstr(&mut out, self.syms.s(*t));
            out.push(',');
            jstr(&mut out, self.syms.s(*tok));
            let _ = write!(out, ",{a}]");
        }
        out.push(']');
        if !self.reverted.is_empty() {
            out.push_str(",\"reverted_fills\":[");
            let mut rs: Vec<&(i128, i128)> = self.reverted.iter().collect();
            rs.sort();
            for (i, (s, x)) in rs.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let _ = write!(out, "[{s},{x}]");
            }
            out.push(']');
        }
        // Likewise the switches (added after version 1: older snapshots load without them).
        if !self.cancel_schedules.is_empty() {
            out.push_str(",\"cancel_schedules\":[");
            let mut rows: Vec<(&str, u64, u64)> = self.cancel_schedules.iter().map(|(t, &(at, n))| (self.syms.s(*t), at, n)).collect();
            rows.sort();
            for (i, (t, at, n)) in rows.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push('[');
                jstr(&mut out, t);
                let _ = write!(out, ",{at},{n}]");
            }
            out.push(']');
        }
        if !self.disconnect_timers.is_empty() {
            out.push_str(",\"disconnect_timers\":[");
            let mut rows: Vec<(&str, &str, u64)> = self.disconnect_timers.iter().map(|((t, c), &d)| (self.syms.s(*t), &**c, d)).collect();
            rows.sort();
            for (i, (t, c, d)) in rows.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push('[');
                jstr(&mut out, t);
                out.push(',');
                jstr(&mut out, c);
                let _ = write!(out, ",{d}]");
            }
            out.push(']');
        }
        out.push('}');
        out
    }
}

// ---------------------------------------------------------------------- loading

type E = String;

fn arr(v: &Value) -> Result<&Vec<Value>, E> {
    v.as_array().ok_or_else(|| "expected a list".to_string())
}

fn tup<const N: usize>(v: &Value) -> Result<&[Value; N], E> {
    let a = arr(v)?;
    <&[Value; N]>::try_from(a.as_slice()).map_err(|_| format!("expected a list of {N}"))
}

fn s(v: &Value) -> Result<&str, E> {
    v.as_str().ok_or_else(|| "expected a string".to_string())
}

fn num_text(v: &Value) -> Result<String, E> {
    match v {
        Value::Number(n) => Ok(n.to_string()),
        _ => Err("expected an integer".into()),
    }
}

fn u256(v: &Value) -> Result<U256, E> {
    let t = num_text(v)?;
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("expected a non-negative integer, got {t}"));
    }
    U256::from_str_radix(&t, 10).map_err(|_| format!("integer above 2**256-1: {t}"))
}

fn i128v(v: &Value) -> Result<i128, E> {
    let t = num_text(v)?;
    t.parse::<i128>().map_err(|_| format!("expected an integer, got {t}"))
}

fn u64v(v: &Value) -> Result<u64, E> {
    let t = num_text(v)?;
    t.parse::<u64>().map_err(|_| format!("expected a uint64, got {t}"))
}

fn unhex(v: &Value) -> Result<Hash, E> {
    let t = s(v)?;
    if t.len() % 2 != 0 {
        return Err("odd-length hex".into());
    }
    (0..t.len())
        .step_by(2)
        .map(|i| t.get(i..i + 2).and_then(|x| u8::from_str_radix(x, 16).ok()).ok_or_else(|| "bad hex".to_string()))
        .collect::<Result<Vec<u8>, E>>()
        .map(Into::into)
}

fn state(v: &Value) -> Result<MState, E> {
    MState::from_name(s(v)?).ok_or_else(|| "unknown market state".to_string())
}

fn obj<'a>(root: &'a serde_json::Map<String, Value>, k: &str) -> Result<&'a Value, E> {
    root.get(k).ok_or_else(|| format!("missing {k}"))
}

pub fn load(data: &[u8]) -> Result<Engine, E> {
    let root: Value = serde_json::from_slice(data).map_err(|e| format!("snapshot is not JSON: {e}"))?;
    let root = root.as_object().ok_or("snapshot is not an object")?;
    let version = num_text(obj(root, "version")?)?;
    if version != SNAPSHOT_VERSION.to_string() {
        return Err(format!("unsupported snapshot version {version}"));
    }
    let mut e = Engine::new(s(obj(root, "fee_recipient")?)?);
    e.last_seq = i128v(obj(root, "last_seq")?)?;
    for row in arr(obj(root, "markets")?)? {
        let [spec, mstate, last_price, highs, lows, bids, asks] = tup::<7>(row)?;
        let [mid, base, quote, tick, lot, min_amount, maker, taker, sstate, max_amount, max_notional, band, mv, window] = tup::<14>(spec)?;
        let bps = |v: &Value| -> Result<u64, E> { u64v(v).and_then(|x| if x <= 100 { Ok(x) } else { Err("fee above 100 bps".into()) }) };
        let spec = Spec {
            market_id: e.syms.get(s(mid)?),
            base: e.syms.get(s(base)?),
            quote: e.syms.get(s(quote)?),
            tick: u256(tick)?,
            lot: u256(lot)?,
            min_amount: u256(min_amount)?,
            maker_bps: bps(maker)?,
            taker_bps: bps(taker)?,
            state: state(sstate)?,
            max_amount: u256(max_amount)?,
            max_notional: u256(max_notional)?,
            band_bps: u256(band)?,
            move_bps: u256(mv)?,
            window_s: u64v(window)?,
        };
        if spec.tick.is_zero() || spec.lot.is_zero() || spec.base == spec.quote {
            return Err("invalid market spec".into());
        }
        if e.market_index.contains_key(&spec.market_id) {
            return Err("market listed twice".into());
        }
        let mi = e.add_market_spec(spec);
        let m = &mut e.markets[mi as usize];
        m.state = state(mstate)?;
        m.last_price = u256(last_price)?;
        let window = |v: &Value| -> Result<VecDeque<(i128, U256)>, E> {
            arr(v)?.iter().map(|x| tup::<2>(x).and_then(|[t, p]| Ok((i128v(t)?, u256(p)?)))).collect()
        };
        m.highs = window(highs)?;
        m.lows = window(lows)?;
        for (side_rows, side) in [(bids, Side::Buy), (asks, Side::Sell)] {
            for row in arr(side_rows)? {
                let [h, trader, oside, price, amount, remaining, tif, nonce, expiry, coid] = tup::<10>(row)?;
                let oside = match u64v(oside)? {
                    0 => Side::Buy,
                    1 => Side::Sell,
                    _ => return Err("bad side".into()),
                };
                if oside != side {
                    return Err("order on the wrong side".into());
                }
                let tif = match u64v(tif)? {
                    0 => Tif::Gtc,
                    1 => Tif::Ioc,
                    2 => Tif::Fok,
                    3 => Tif::PostOnly,
                    _ => return Err("bad time in force".into()),
                };
                let coid = if coid.is_null() { None } else { Some(s(coid)?) };
                let h = unhex(h)?;
                let trader = e.syms.get(s(trader)?);
                let (price, amount, remaining) = (u256(price)?, u256(amount)?, u256(remaining)?);
                if price.is_zero() || remaining.is_zero() || remaining > amount {
                    return Err("invalid resting order".into());
                }
                if e.find_open(trader, &h).is_some() {
                    return Err("order twice in book".into());
                }
                let hid = e.push_hash(&h);
                e.rest(hid, trader, mi, oside, price, amount, remaining, tif, u64v(nonce)?, u64v(expiry)?, coid).map_err(|f| f.0)?;
            }
        }
    }
    for row in arr(obj(root, "balances")?)? {
        let [trader, token, total, locked] = tup::<4>(row)?;
        let (t, k) = (e.syms.get(s(trader)?), e.syms.get(s(token)?));
        let c = e.cell(t, k);
        let cell = &mut e.cells[c as usize];
        cell.total = u256(total)?;
        cell.locked = u256(locked)?;
    }
    for row in arr(obj(root, "nonces")?)? {
        let [trader, rows] = tup::<2>(row)?;
        let t = e.syms.get(s(trader)?);
        let mut used: rustc_hash::FxHashMap<u64, u32> = rustc_hash::FxHashMap::default();
        for r in arr(rows)? {
            let [n, h] = tup::<2>(r)?;
            let (n, h) = (u64v(n)?, unhex(h)?);
            // An open order's hash is in the arena already: share it.
            let hid = match e.find_open(t, &h) {
                Some(r) if e.slab[r.idx as usize].nonce == n => e.slab[r.idx as usize].hid,
                _ => e.push_hash(&h),
            };
            used.insert(n, hid);
        }
        e.nonces.insert(t, used);
    }
    for row in arr(obj(root, "cancel_bars")?)? {
        let [trader, rows] = tup::<2>(row)?;
        let t = e.syms.get(s(trader)?);
        let mut bars = rustc_hash::FxHashMap::default();
        for r in arr(rows)? {
            let [m, b] = tup::<2>(r)?;
            let b = u256(b)?;
            if b > U256::from(1u128 << 64) {
                return Err("cancel bar above 2**64".into());
            }
            bars.insert(e.syms.get(s(m)?), b.as_limbs()[0] as u128 | ((b.as_limbs()[1] as u128) << 64));
        }
        e.cancel_bars.insert(t, bars);
    }
    for t in arr(obj(root, "frozen")?)? {
        let t = e.syms.get(s(t)?);
        e.frozen.insert(t);
    }
    for row in arr(obj(root, "withdrawals")?)? {
        let [wid, trader, token, amount] = tup::<4>(row)?;
        let (t, k) = (e.syms.get(s(trader)?), e.syms.get(s(token)?));
        e.withdrawals.insert(s(wid)?.into(), (t, k, u256(amount)?));
    }
    if let Some(rows) = root.get("reverted_fills") {
        for r in arr(rows)? {
            let [a, b] = tup::<2>(r)?;
            e.reverted.insert((i128v(a)?, i128v(b)?));
        }
    }
    if let Some(rows) = root.get("cancel_schedules") {
        for r in arr(rows)? {
            let [t, at, n] = tup::<3>(r)?;
            let t = e.syms.get(s(t)?);
            e.cancel_schedules.insert(t, (u64v(at)?, u64v(n)?));
        }
    }
    if let Some(rows) = root.get("disconnect_timers") {
        for r in arr(rows)? {
            let [t, c, d] = tup::<3>(r)?;
            let t = e.syms.get(s(t)?);
            e.disconnect_timers.insert((t, s(c)?.into()), u64v(d)?);
        }
    }
    e.recompute_supply().map_err(|f| f.0)?;
    e.check()?;
    Ok(e)
}
