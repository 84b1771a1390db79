//! Events encoded straight from the core's own values, byte for byte what
//! `codec.encode_events` writes for the event objects the binding builds from them (generic
//! layout: tag, the non-integer fields in declaration order, then every integer field as
//! comma-separated hex). Fields in the order of `backend/matching/events.py`.

use crate::codec::{push_hex, w_bytes, w_len};
use crate::core::*;
use crate::num::*;

enum V<'a> {
    I(U256),
    S(&'a str),
    B(&'a [u8]),
    OS(Option<&'a str>),
    E(u8),
    C(u16),
    OI(Option<U256>),
}

fn int(v: &PInt) -> Option<U256> {
    v.val()
}

fn i(v: i128) -> Option<U256> {
    if v < 0 { None } else { Some(U256::from(v as u128)) }
}

fn write(out: &mut Vec<u8>, body: &mut Vec<u8>, ints: &mut String, tag: u8, vals: &[V<'_>]) {
    body.clear();
    ints.clear();
    body.push(tag);
    for v in vals {
        match v {
            V::I(x) => {
                if !ints.is_empty() {
                    ints.push(',');
                }
                push_hex(ints, x);
            }
            V::S(s) => w_bytes(body, s.as_bytes()),
            V::B(b) => w_bytes(body, b),
            V::OS(None) | V::OI(None) => body.push(0),
            V::OS(Some(s)) => {
                body.push(1);
                w_bytes(body, s.as_bytes());
            }
            V::E(b) => body.push(*b),
            V::C(c) => body.extend_from_slice(&c.to_le_bytes()),
            V::OI(Some(x)) => {
                body.push(1);
                let mut t = String::with_capacity(64);
                push_hex(&mut t, x);
                w_bytes(body, t.as_bytes());
            }
        }
    }
    body.extend_from_slice(ints.as_bytes());
    w_len(out, body.len());
    out.extend_from_slice(body);
}

/// Append the encoding of `events` (caused by `cmd`, sequenced `seq`) to `out`; false (and
/// `out` as it was) if one holds an integer the encoder does not take (a negative one).
pub fn encode(e: &Engine, codes: &[u16], seq: i128, cmd: &Cmd<'_>, events: &[Ev], out: &mut Vec<u8>) -> bool {
    let start = out.len();
    let ok = encode_all(e, codes, seq, cmd, events, out).is_some();
    if !ok {
        out.truncate(start);
    }
    ok
}

fn encode_all(e: &Engine, codes: &[u16], seq: i128, cmd: &Cmd<'_>, events: &[Ev], out: &mut Vec<u8>) -> Option<()> {
    let seqv = i(seq)?;
    let cmd_hash: &[u8] = match cmd {
        Cmd::Place { h, .. } | Cmd::Cancel { h, .. } => h,
        _ => &[],
    };
    SCRATCH.with_borrow_mut(|(body, ints)| encode_with(e, codes, seqv, cmd, cmd_hash, events, out, body, ints))
}

/// An event's order hash: the command's own, or one the core holds.
fn hash_of<'a>(h: &'a H, cmd_hash: &'a [u8]) -> &'a [u8] {
    match h {
        H::Cmd => cmd_hash,
        H::Own(b) => &b[..],
    }
}

thread_local! {
    /// One event's body and its integers' text while it is written: reused, never reallocated.
    static SCRATCH: std::cell::RefCell<(Vec<u8>, String)> = std::cell::RefCell::new((Vec::with_capacity(256), String::with_capacity(256)));
}

#[allow(clippy::too_many_arguments)]
fn encode_with(e: &Engine, codes: &[u16], seqv: U256, cmd: &Cmd<'_>, cmd_hash: &[u8], events: &[Ev], out: &mut Vec<u8>, body: &mut Vec<u8>, ints: &mut String) -> Option<()> {
    let s = |k: Sym| e.syms.s(k);
    for ev in events {
        match ev {
            Ev::Accepted { trader, market, side, tif } => {
                let Cmd::Place { price, amount, nonce, expiry, coid, .. } = cmd else { return None };
                let vals = [V::I(seqv), V::B(cmd_hash), V::S(s(*trader)), V::S(s(*market)), V::E(*side as u8), V::I(int(price)?), V::I(int(amount)?), V::E(*tif as u8), V::I(int(nonce)?), V::I(int(expiry)?), V::OS(*coid)];
                write(out, body, ints, 0, &vals);
            }
            Ev::Rejected { trader, market, code, msg } => {
                write(out, body, ints, 1, &[V::I(seqv), V::B(cmd_hash), V::S(s(*trader)), V::S(s(*market)), V::C(codes[*code as usize]), V::S(msg)]);
            }
            Ev::Duplicate { trader } => write(out, body, ints, 2, &[V::I(seqv), V::B(cmd_hash), V::S(s(*trader))]),
            Ev::Fill(f) => {
                let th = hash_of(&f.taker_hash, cmd_hash);
                let vals = [
                    V::I(seqv),
                    V::I(U256::from(f.fill_index)),
                    V::S(s(f.market)),
                    V::B(&f.maker_hash),
                    V::S(s(f.maker_trader)),
                    V::B(th),
                    V::S(s(f.taker_trader)),
                    V::E(f.taker_side as u8),
                    V::I(f.price),
                    V::I(f.amount),
                    V::I(f.quote),
                    V::I(f.maker_fee),
                    V::I(f.taker_fee),
                    V::I(f.maker_left),
                    V::I(f.taker_left),
                ];
                write(out, body, ints, 3, &vals);
            }
            Ev::Cancelled { hash, trader, market, reason, remaining } => {
                let h = hash_of(hash, cmd_hash);
                write(out, body, ints, 4, &[V::I(seqv), V::B(h), V::S(s(*trader)), V::S(s(*market)), V::E(*reason as u8), V::I(*remaining)]);
            }
            Ev::CancelRejected { trader } => {
                write(out, body, ints, 5, &[V::I(seqv), V::B(cmd_hash), V::S(s(*trader)), V::C(codes[Code::OrderNotFound as usize])]);
            }
            Ev::CancelAllApplied { trader, market, nonce_below, cancelled } => {
                let vals = [V::I(seqv), V::S(s(*trader)), V::OS(market.map(s)), V::I(U256::from(*nonce_below)), V::I(U256::from(*cancelled as u64))];
                write(out, body, ints, 6, &vals);
            }
            Ev::Balance { trader, token, total, locked } => {
                write(out, body, ints, 7, &[V::I(seqv), V::S(s(*trader)), V::S(s(*token)), V::I(*total), V::I(*locked)]);
            }
            Ev::WReserved { wid, trader, token, amount } => {
                write(out, body, ints, 8, &[V::I(seqv), V::S(wid), V::S(s(*trader)), V::S(s(*token)), V::I(*amount)]);
            }
            Ev::WReleased { wid, trader, token, amount } => {
                write(out, body, ints, 9, &[V::I(seqv), V::S(wid), V::S(s(*trader)), V::S(s(*token)), V::I(*amount)]);
            }
            Ev::Frozen { trader } => write(out, body, ints, 10, &[V::I(seqv), V::S(s(*trader))]),
            Ev::MarketAdded { market } => write(out, body, ints, 11, &[V::I(seqv), V::S(s(*market))]),
            Ev::MarketState { market, old, new, reason } => {
                write(out, body, ints, 12, &[V::I(seqv), V::S(s(*market)), V::E(*old as u8), V::E(*new as u8), V::S(reason)]);
            }
            Ev::Risk { market, kind, msg, reference, price } => {
                write(out, body, ints, 13, &[V::I(seqv), V::S(s(*market)), V::S(kind), V::S(msg), V::I(*reference), V::I(*price)]);
            }
            Ev::CmdRejected { command, code, msg } => {
                write(out, body, ints, 14, &[V::I(seqv), V::S(command), V::C(codes[*code as usize]), V::S(msg)]);
            }
            Ev::FillReverted(f) => {
                let vals = [
                    V::I(seqv),
                    V::I(i(f.fill_seq)?),
                    V::I(i(f.fill_index)?),
                    V::S(s(f.market)),
                    V::B(&f.maker_hash),
                    V::S(s(f.maker_trader)),
                    V::B(&f.taker_hash),
                    V::S(s(f.taker_trader)),
                    V::I(f.amount),
                    V::OI(f.maker_left),
                    V::OI(f.taker_left),
                ];
                write(out, body, ints, 15, &vals);
            }
            Ev::CancelScheduled { trader, time, nonce } => {
                write(out, body, ints, 16, &[V::I(seqv), V::S(s(*trader)), V::I(U256::from(*time)), V::I(U256::from(*nonce))]);
            }
        }
    }
    Some(())
}
