//! Journal records (`backend/engine/records.py`: u32 command length, the command's codec
//! bytes, the intake) in their packed PlaceOrder / CancelOrder layouts (codec.py `_place`,
//! `_cancel`), decoded straight into engine commands for replay. Anything else, or anything
//! damaged, gives None: the Python decoder then takes the record and reports what is wrong.

use crate::core::{Cmd, Interner, Side, Tif};
use crate::num::{PInt, U256};

const PLACE: u8 = 0x80;
const CANCEL: u8 = 0x81;

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn u8(&mut self) -> Option<u8> {
        let b = *self.buf.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }
    fn u64(&mut self) -> Option<u64> {
        let b = self.buf.get(self.pos..self.pos + 8)?;
        self.pos += 8;
        Some(u64::from_le_bytes(b.try_into().ok()?))
    }
    fn short(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()? as usize;
        let b = self.buf.get(self.pos..self.pos + n)?;
        self.pos += n;
        Some(b)
    }
    fn text(&mut self) -> Option<&'a str> {
        std::str::from_utf8(self.short()?).ok()
    }
}

fn int(v: u64) -> PInt {
    PInt::Val(U256::from(v))
}

/// A command in a packed layout, its fields as they are in the bytes.
pub enum Packed<'a> {
    Place { seq: u64, now: u64, price: u64, amount: u64, nonce: u64, expiry: u64, h: &'a [u8], trader: &'a str, market: &'a str, side: Side, tif: Tif, coid: Option<&'a str> },
    Cancel { seq: u64, now: u64, h: &'a [u8], trader: &'a str },
}

/// The command bytes `body` (tag first) in a packed layout, read whole; None for another
/// layout or for anything damaged, truncated or followed by extra bytes.
pub fn parse(body: &[u8]) -> Option<Packed<'_>> {
    let mut r = Reader { buf: body, pos: 1 };
    let out = match *body.first()? {
        PLACE => {
            let (seq, now, price, amount, nonce, expiry) = (r.u64()?, r.u64()?, r.u64()?, r.u64()?, r.u64()?, r.u64()?);
            let h = r.short()?;
            let trader = r.text()?;
            let market = r.text()?;
            let side = match r.u8()? {
                0 => Side::Buy,
                1 => Side::Sell,
                _ => return None,
            };
            let tif = match r.u8()? {
                0 => Tif::Gtc,
                1 => Tif::Ioc,
                2 => Tif::Fok,
                3 => Tif::PostOnly,
                _ => return None,
            };
            let coid = match r.u8()? {
                0 => None,
                _ => Some(r.text()?),
            };
            Packed::Place { seq, now, price, amount, nonce, expiry, h, trader, market, side, tif, coid }
        }
        CANCEL => {
            let (seq, now) = (r.u64()?, r.u64()?);
            let h = r.short()?;
            let trader = r.text()?;
            Packed::Cancel { seq, now, h, trader }
        }
        _ => return None,
    };
    if r.pos != body.len() {
        return None;
    }
    Some(out)
}

/// (seq, now, command) of a journal record in a packed layout, else None.
pub fn packed<'a>(payload: &'a [u8], syms: &mut Interner) -> Option<(i128, i128, Cmd<'a>)> {
    let n = u32::from_le_bytes(payload.get(0..4)?.try_into().ok()?) as usize;
    let body = payload.get(4..4usize.checked_add(n)?)?;
    match parse(body)? {
        Packed::Place { seq, now, price, amount, nonce, expiry, h, trader, market, side, tif, coid } => {
            let (trader, market) = (syms.get(trader), syms.get(market));
            let cmd = Cmd::Place { now: now as i128, h, trader, market, side, price: int(price), amount: int(amount), tif, nonce: int(nonce), expiry: int(expiry), coid };
            Some((seq as i128, now as i128, cmd))
        }
        Packed::Cancel { seq, now, h, trader } => Some((seq as i128, now as i128, Cmd::Cancel { h, trader: syms.get(trader) })),
    }
}
