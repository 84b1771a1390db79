//! Exact integers: amounts and prices are uint256, products are taken in 512 bits.

pub use ruint::aliases::{U256, U512};

pub const PRICE_SCALE: u64 = 1_000_000_000_000_000_000;
pub const BPS: u64 = 10_000;

/// An integer as the command carried it: Python ints are unbounded, so a value may be
/// negative or wider than 256 bits; the engine decides what that means where it reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PInt {
    Neg,
    Val(U256),
    Big,
}

impl PInt {
    pub fn is_pos(&self) -> bool {
        matches!(self, PInt::Big) || matches!(self, PInt::Val(v) if !v.is_zero())
    }
    pub fn u64(&self) -> Option<u64> {
        match self {
            PInt::Val(v) if v.bit_len() <= 64 => Some(v.as_limbs()[0]),
            _ => None,
        }
    }
    pub fn val(&self) -> Option<U256> {
        match self {
            PInt::Val(v) => Some(*v),
            _ => None,
        }
    }
}

#[inline]
pub fn wide(x: U256) -> U512 {
    let l = x.as_limbs();
    U512::from_limbs([l[0], l[1], l[2], l[3], 0, 0, 0, 0])
}

#[inline]
pub fn narrow(x: U512) -> Option<U256> {
    let l = x.as_limbs();
    if l[4] | l[5] | l[6] | l[7] != 0 {
        return None;
    }
    Some(U256::from_limbs([l[0], l[1], l[2], l[3]]))
}

/// a * b / d, floored, in 512 bits.
#[inline]
pub fn mul_div_wide(a: U256, b: U256, d: u64) -> U512 {
    if a.bit_len() + b.bit_len() <= 128 {
        let la = a.as_limbs();
        let lb = b.as_limbs();
        let p = (la[0] as u128 | ((la[1] as u128) << 64)) * (lb[0] as u128 | ((lb[1] as u128) << 64));
        return U512::from(p / d as u128);
    }
    (wide(a) * wide(b)) / U512::from(d)
}

/// The engine's state broke arithmetic that its invariants rule out: stop, never wrap.
#[derive(Debug)]
pub struct Fault(pub String);

pub type R<T> = Result<T, Fault>;

#[inline]
pub fn mul_div(a: U256, b: U256, d: u64) -> R<U256> {
    narrow(mul_div_wide(a, b, d)).ok_or_else(|| Fault("product above 2**256-1".into()))
}

/// a + b, or None on overflow: limb by limb, inlined (the library's is an out-of-line loop).
#[inline(always)]
pub fn checked_add(a: U256, b: U256) -> Option<U256> {
    let (x, y) = (a.as_limbs(), b.as_limbs());
    let (r0, c) = x[0].overflowing_add(y[0]);
    let (r1, c) = x[1].carrying_add(y[1], c);
    let (r2, c) = x[2].carrying_add(y[2], c);
    let (r3, c) = x[3].carrying_add(y[3], c);
    if c { None } else { Some(U256::from_limbs([r0, r1, r2, r3])) }
}

/// a - b, or None below zero.
#[inline(always)]
pub fn checked_sub(a: U256, b: U256) -> Option<U256> {
    let (x, y) = (a.as_limbs(), b.as_limbs());
    let (r0, c) = x[0].overflowing_sub(y[0]);
    let (r1, c) = x[1].borrowing_sub(y[1], c);
    let (r2, c) = x[2].borrowing_sub(y[2], c);
    let (r3, c) = x[3].borrowing_sub(y[3], c);
    if c { None } else { Some(U256::from_limbs([r0, r1, r2, r3])) }
}

#[inline]
pub fn add(a: U256, b: U256) -> R<U256> {
    checked_add(a, b).ok_or_else(|| Fault("sum above 2**256-1".into()))
}

#[inline]
pub fn sub(a: U256, b: U256) -> R<U256> {
    checked_sub(a, b).ok_or_else(|| Fault("balance or level below zero".into()))
}

/// Whether `d` divides `x` (d > 0), without a 256-bit division when both fit in 128 bits.
#[inline]
pub fn divides(d: U256, x: U256) -> bool {
    if x.bit_len() <= 128 && d.bit_len() <= 128 {
        let (a, b) = (x.as_limbs(), d.as_limbs());
        let (x, d) = (a[0] as u128 | ((a[1] as u128) << 64), b[0] as u128 | ((b[1] as u128) << 64));
        return x % d == 0;
    }
    (x % d).is_zero()
}
