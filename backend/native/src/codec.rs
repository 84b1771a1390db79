//! The outbox encoding of events (backend/matching/codec.py, generic layout) in native code:
//! byte for byte what `codec.encode_events` writes, for the events of either engine, and its
//! decoder (`decode_events`, the API's reading of the engine port's SUBMITTED answers), which
//! builds the event objects `codec.decode_events_python` builds and refuses what it refuses.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyInt, PyList, PyString};
use pyo3::IntoPyObjectExt;

use crate::num::PInt;

/// How a field is encoded (the field's annotation in events.py).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Int,
    Str,
    Bytes,
    OptStr,
    Side,
    Tif,
    State,
    Reason,
    Code,
    OptInt,
}

impl Kind {
    pub fn of(annotation: &str) -> Option<Kind> {
        Some(match annotation {
            "int" => Kind::Int,
            "str" => Kind::Str,
            "bytes" => Kind::Bytes,
            "str | None" => Kind::OptStr,
            "Side" => Kind::Side,
            "TimeInForce" => Kind::Tif,
            "MarketState" => Kind::State,
            "CancelReason" => Kind::Reason,
            "ErrorCode" => Kind::Code,
            "int | None" => Kind::OptInt,
            _ => return None,
        })
    }
}

pub fn w_len(out: &mut Vec<u8>, n: usize) {
    if n < 0xFF {
        out.push(n as u8);
    } else {
        out.push(0xFF);
        out.extend_from_slice(&(n as u32).to_le_bytes());
    }
}

pub fn w_bytes(out: &mut Vec<u8>, b: &[u8]) {
    w_len(out, b.len());
    out.extend_from_slice(b);
}

/// The two lower-case hex digits of each byte value.
const HEX_PAIRS: [[u8; 2]; 256] = {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut t = [[0u8; 2]; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = [DIGITS[b >> 4], DIGITS[b & 15]];
        b += 1;
    }
    t
};

/// Lower-case hex of `v` without leading zeros ("0" for zero), as Python's "%x". Every event
/// carries several integers, so this goes a byte at a time through a table, over the value's
/// significant bytes only, straight into `text`.
pub fn push_hex(text: &mut String, v: &crate::num::U256) {
    let bits = v.bit_len();
    if bits == 0 {
        text.push('0');
        return;
    }
    let be: [u8; 32];
    let small: [u8; 8];
    let bytes: &[u8] = if bits <= 64 {
        small = v.as_limbs()[0].to_be_bytes();
        &small[8 - bits.div_ceil(8)..]
    } else {
        be = v.to_be_bytes::<32>();
        &be[32 - bits.div_ceil(8)..]
    };
    let digits = bits.div_ceil(4);
    // SAFETY: ASCII digits only are written, into capacity reserved for two per byte; an odd
    // digit count starts one digit in (the first byte's high nibble is a leading zero), and
    // the length then covers just the digits.
    unsafe {
        let out = text.as_mut_vec();
        out.reserve(2 * bytes.len());
        let start = out.len();
        let at = out.as_mut_ptr().add(start);
        for (k, b) in bytes.iter().enumerate() {
            at.add(2 * k).cast::<[u8; 2]>().write_unaligned(HEX_PAIRS[*b as usize]);
        }
        if digits % 2 == 1 {
            std::ptr::copy(at.add(1), at, digits);
        }
        out.set_len(start + digits);
    }
}

/// Lower-case hex of a non-negative int, as Python's "%x"; false if negative or wider.
fn hex_of(ob: &Bound<'_, PyAny>, text: &mut String) -> PyResult<bool> {
    match crate::pint(ob)? {
        PInt::Val(v) => {
            push_hex(text, &v);
            Ok(true)
        }
        _ => Ok(false),
    }
}

fn member(members: &[Py<PyAny>], ob: &Bound<'_, PyAny>) -> Option<u8> {
    members.iter().position(|m| m.as_ptr() == ob.as_ptr()).map(|i| i as u8)
}

/// Append one event's body; Ok(false) if it holds something only the Python encoder knows how
/// to write (a negative integer, say), in which case `out` is left as it was.
fn encode_one(cfg: &crate::Config, ev: &Bound<'_, PyAny>, out: &mut Vec<u8>, ints: &mut String) -> PyResult<bool> {
    let tp = ev.get_type();
    let Some(tag) = cfg.ev_slots.iter().position(|s| s.cls.as_ptr() == tp.as_ptr()) else { return Ok(false) };
    let slots = &cfg.ev_slots[tag];
    let kinds = &cfg.ev_kinds[tag];
    let start = out.len();
    out.push(tag as u8);
    ints.clear();
    for (i, kind) in kinds.iter().enumerate() {
        let v = slots.get(ev, i)?;
        let ok = match kind {
            Kind::Int => {
                if !ints.is_empty() {
                    ints.push(',');
                }
                hex_of(&v, ints)?
            }
            Kind::Str => match v.cast::<PyString>() {
                Ok(s) => {
                    w_bytes(out, s.to_str()?.as_bytes());
                    true
                }
                Err(_) => false,
            },
            Kind::Bytes => match v.cast::<PyBytes>() {
                Ok(b) => {
                    w_bytes(out, b.as_bytes());
                    true
                }
                Err(_) => false,
            },
            Kind::OptStr => {
                if v.is_none() {
                    out.push(0);
                    true
                } else if let Ok(s) = v.cast::<PyString>() {
                    out.push(1);
                    w_bytes(out, s.to_str()?.as_bytes());
                    true
                } else {
                    false
                }
            }
            Kind::Side | Kind::Tif | Kind::State | Kind::Reason => {
                let members = match kind {
                    Kind::Side => &cfg.sides,
                    Kind::Tif => &cfg.tifs,
                    Kind::State => &cfg.states,
                    _ => &cfg.reasons,
                };
                match member(members, &v) {
                    Some(b) => {
                        out.push(b);
                        true
                    }
                    None => false,
                }
            }
            Kind::Code => match cfg.codes.iter().position(|m| m.as_ptr() == v.as_ptr()) {
                Some(i) => {
                    out.extend_from_slice(&cfg.code_values[i].to_le_bytes());
                    true
                }
                None => match v.getattr(pyo3::intern!(v.py(), "value"))?.extract::<u16>() {
                    Ok(code) => {
                        out.extend_from_slice(&code.to_le_bytes());
                        true
                    }
                    Err(_) => false,
                },
            },
            Kind::OptInt => {
                if v.is_none() {
                    out.push(0);
                    true
                } else {
                    out.push(1);
                    let mut text = String::new();
                    let ok = hex_of(&v, &mut text)?;
                    w_bytes(out, text.as_bytes());
                    ok
                }
            }
        };
        if !ok {
            out.truncate(start);
            return Ok(false);
        }
    }
    out.extend_from_slice(ints.as_bytes());
    Ok(true)
}

/// Append each event, length-prefixed, to `out`; False (and `out` unchanged) if one of them
/// needs the Python encoder.
#[pyfunction]
pub fn encode_events(py: Python<'_>, events: &Bound<'_, PyAny>, out: &Bound<'_, PyByteArray>) -> PyResult<bool> {
    let cfg = crate::cfg(py)?;
    let Ok(events) = events.cast::<PyList>() else { return Ok(false) };
    let mut buf: Vec<u8> = Vec::with_capacity(128 * events.len());
    let mut body: Vec<u8> = Vec::with_capacity(256);
    let mut ints = String::with_capacity(128);
    for ev in events.iter() {
        body.clear();
        if !encode_one(cfg, &ev, &mut body, &mut ints)? {
            return Ok(false);
        }
        w_len(&mut buf, body.len());
        buf.extend_from_slice(&body);
    }
    let old = out.len();
    out.resize(old + buf.len())?;
    // SAFETY: the bytearray was just resized and nothing else runs while we hold the GIL.
    unsafe {
        out.as_bytes_mut()[old..].copy_from_slice(&buf);
    }
    Ok(true)
}

fn u64_of(ob: &Bound<'_, PyAny>) -> PyResult<Option<u64>> {
    Ok(match crate::pint(ob)? {
        PInt::Val(v) if v.bit_len() <= 64 => Some(v.as_limbs()[0]),
        _ => None,
    })
}

/// `(len, bytes)` with a one-byte length, if the length is below 0xFF.
fn short(out: &mut Vec<u8>, b: &[u8]) -> bool {
    if b.len() >= 0xFF {
        return false;
    }
    out.push(b.len() as u8);
    out.extend_from_slice(b);
    true
}

/// The packed journal layout of a PlaceOrder or CancelOrder (codec.py `_place`, `_cancel`), or
/// None when the command takes the generic layout (another type, an integer beyond u64, a long
/// field): the Python encoder writes those.
#[pyfunction]
pub fn encode_command<'py>(py: Python<'py>, command: &Bound<'py, PyAny>) -> PyResult<Option<Bound<'py, PyBytes>>> {
    let mut out: Vec<u8> = Vec::with_capacity(160);
    Ok(if encode_packed(py, command, &mut out)? { Some(PyBytes::new(py, &out)) } else { None })
}

/// Append the packed encoding of `command` to `out`; false (`out` then holds a partial
/// encoding, to be discarded) when it takes the generic layout.
pub fn encode_packed(py: Python<'_>, command: &Bound<'_, PyAny>, out: &mut Vec<u8>) -> PyResult<bool> {
    let cfg = crate::cfg(py)?;
    let tp = command.get_type();
    let kind = if tp.as_ptr() == cfg.commands[0].as_ptr() {
        0
    } else if tp.as_ptr() == cfg.commands[1].as_ptr() {
        1
    } else {
        return Ok(false);
    };
    let slots = &cfg.cmd_slots[kind];
    let f = |i: usize| slots.get(command, i);
    out.push(kind as u8 | 0x80);
    let int_fields: &[usize] = if kind == 0 { &[0, 1, 6, 7, 9, 10] } else { &[0, 1] };
    for &i in int_fields {
        match u64_of(&f(i)?)? {
            Some(v) => out.extend_from_slice(&v.to_le_bytes()),
            None => return Ok(false),
        }
    }
    let Ok(h) = f(2)?.cast_into::<PyBytes>() else { return Ok(false) };
    let Ok(trader) = f(3)?.cast_into::<PyString>() else { return Ok(false) };
    if !short(out, h.as_bytes()) || !short(out, trader.to_str()?.as_bytes()) {
        return Ok(false);
    }
    if kind == 0 {
        let Ok(market) = f(4)?.cast_into::<PyString>() else { return Ok(false) };
        if !short(out, market.to_str()?.as_bytes()) {
            return Ok(false);
        }
        let (Some(side), Some(tif)) = (member(&cfg.sides, &f(5)?), member(&cfg.tifs, &f(8)?)) else { return Ok(false) };
        out.push(side);
        out.push(tif);
        let coid = f(11)?;
        if coid.is_none() {
            out.push(0);
        } else {
            let Ok(coid) = coid.cast_into::<PyString>() else { return Ok(false) };
            out.push(1);
            if !short(out, coid.to_str()?.as_bytes()) {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

// ---------------------------------------------------------------------- decoding

fn bad(msg: impl Into<String>) -> PyErr {
    PyValueError::new_err(msg.into())
}

/// A cursor over one buffer; every read checks its bounds, so damaged input is refused with
/// ValueError and never read past.
struct Cur<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cur<'a> {
    fn byte(&mut self) -> PyResult<u8> {
        let b = *self.buf.get(self.pos).ok_or_else(|| bad("truncated"))?;
        self.pos += 1;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> PyResult<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len()).ok_or_else(|| bad("truncated"))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    /// A length-prefixed field (1 byte, or 0xFF + u32).
    fn field(&mut self) -> PyResult<&'a [u8]> {
        let mut n = self.byte()? as usize;
        if n == 0xFF {
            let raw: [u8; 4] = self.take(4)?.try_into().expect("4 bytes");
            n = u32::from_le_bytes(raw) as usize;
        }
        self.take(n)
    }

    fn text(&mut self) -> PyResult<&'a str> {
        std::str::from_utf8(self.field()?).map_err(|e| bad(format!("text field is not UTF-8 ({e})")))
    }
}

fn hex_digit(c: u8) -> u64 {
    match c {
        b'0'..=b'9' => (c - b'0') as u64,
        b'a'..=b'f' => (c - b'a' + 10) as u64,
        _ => (c - b'A' + 10) as u64,
    }
}

/// An integer as `int(token, 16)` reads it. What "%x" writes (hex digits, '-' before a negative
/// value) is parsed here; anything else (a sign '+', '_', spaces, a "0x", more than 256 bits,
/// garbage) goes to `int` itself, which accepts or refuses it exactly as the reference does.
fn int_of<'py>(py: Python<'py>, token: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    let (neg, digits) = match token.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, token),
    };
    let sig = &digits[digits.iter().position(|&c| c != b'0').unwrap_or(digits.len())..];
    if digits.is_empty() || sig.len() > 64 || !digits.iter().all(u8::is_ascii_hexdigit) {
        return py.get_type::<PyInt>().call1((PyBytes::new(py, token), 16));
    }
    let v = if sig.len() <= 16 {
        sig.iter().fold(0u64, |x, &c| (x << 4) | hex_digit(c)).into_bound_py_any(py)?
    } else {
        let mut limbs = [0u64; 4];
        for (i, &c) in sig.iter().rev().enumerate() {
            limbs[i / 16] |= hex_digit(c) << ((i % 16) * 4);
        }
        crate::pylong::int_of(py, &crate::num::U256::from_limbs(limbs))?
    };
    if neg { v.neg() } else { Ok(v) }
}

/// One event from its body (tag, the other fields, the integers running to the end), as the
/// reference reader builds it, written slot by slot (untracked by the GC, as the core's events).
fn decode_one<'py>(py: Python<'py>, cfg: &crate::Config, body: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    let Some(&tag) = body.first() else { return Err(bad("empty event")) };
    let (Some(slots), Some(kinds)) = (cfg.ev_slots.get(tag as usize), cfg.ev_kinds.get(tag as usize)) else {
        return Err(bad(format!("unknown event tag {tag}")));
    };
    let shared = &cfg.ev_shared[tag as usize];
    let fields = || -> PyResult<Bound<'py, PyAny>> {
        let mut cur = Cur { buf: body, pos: 1 };
        let none = || py.None().into_bound(py);
        let mut values: Vec<Option<Bound<'py, PyAny>>> = Vec::with_capacity(kinds.len());
        for (i, kind) in kinds.iter().enumerate() {
            values.push(match kind {
                Kind::Int => None,
                Kind::Str => {
                    let t = cur.text()?;
                    Some(if shared[i] { crate::shared_text(py, t) } else { PyString::new(py, t).into_any() })
                }
                Kind::Bytes => Some(PyBytes::new(py, cur.field()?).into_any()),
                Kind::OptStr => Some(if cur.byte()? == 0 { none() } else { PyString::new(py, cur.text()?).into_any() }),
                Kind::Side | Kind::Tif | Kind::State | Kind::Reason => {
                    let (members, what) = match kind {
                        Kind::Side => (&cfg.sides, "side"),
                        Kind::Tif => (&cfg.tifs, "time in force"),
                        Kind::State => (&cfg.states, "market state"),
                        _ => (&cfg.reasons, "cancel reason"),
                    };
                    let b = cur.byte()?;
                    Some(members.get(b as usize).ok_or_else(|| bad(format!("no {what} {b}")))?.bind(py).clone())
                }
                Kind::Code => {
                    let raw: [u8; 2] = cur.take(2)?.try_into().expect("2 bytes");
                    let v = u16::from_le_bytes(raw);
                    Some(match cfg.code_values.iter().position(|&c| c == v) {
                        Some(k) => cfg.codes[k].bind(py).clone(),
                        // A code the core never gives: the enum itself looks it up (or refuses it).
                        None => cfg.codes[0].bind(py).get_type().call1((v,))?,
                    })
                }
                Kind::OptInt => Some(if cur.byte()? == 0 { none() } else { int_of(py, cur.field()?)? }),
            });
        }
        let rest = &body[cur.pos..];
        let mut tokens = rest.split(|&c| c == b',').filter(|_| !rest.is_empty());
        let wanted = kinds.iter().filter(|k| **k == Kind::Int).count();
        for (v, kind) in values.iter_mut().zip(kinds) {
            if *kind == Kind::Int {
                let token = tokens.next().ok_or_else(|| bad(format!("expected {wanted} integers")))?;
                *v = Some(int_of(py, token)?);
            }
        }
        if tokens.next().is_some() {
            return Err(bad(format!("expected {wanted} integers")));
        }
        slots.build_vec(py, values.into_iter().map(|v| v.expect("every field read")).collect())
    };
    fields().map_err(|e| {
        if e.is_instance_of::<PyValueError>(py) {
            let name = slots.cls.bind(py).name().map(|n| n.to_string()).unwrap_or_default();
            bad(format!("{name}: {}", e.value(py)))
        } else {
            e
        }
    })
}

/// The events of a batch of `codec.encode_events` (each length-prefixed), as
/// `codec.decode_events_python` reads them; ValueError for damaged input (where the reference
/// refuses, whatever it raises), None for anything but bytes (the reference then reads it).
#[pyfunction]
pub fn decode_events<'py>(py: Python<'py>, data: &Bound<'py, PyAny>) -> PyResult<Option<Bound<'py, PyList>>> {
    let Ok(b) = data.cast::<PyBytes>() else { return Ok(None) };
    let cfg = crate::cfg(py)?;
    let mut cur = Cur { buf: b.as_bytes(), pos: 0 };
    let mut events = Vec::with_capacity(8);
    while cur.pos < cur.buf.len() {
        let at = cur.pos;
        let body = cur.field().map_err(|_| bad(format!("event batch: truncated record at byte {at}")))?;
        let ev = decode_one(py, cfg, body).map_err(|e| if e.is_instance_of::<PyValueError>(py) { bad(format!("event batch, record at byte {at}: {}", e.value(py))) } else { e })?;
        events.push(ev);
    }
    PyList::new(py, events).map(Some)
}

#[cfg(test)]
mod tests {
    use super::push_hex;
    use crate::num::U256;

    #[test]
    fn hex_is_pythons_percent_x_at_every_width() {
        let mut values = vec![U256::ZERO, U256::MAX];
        for k in 0..256 {
            let p = U256::from(1u8) << k;
            values.extend([p, p - U256::from(1u8), p | U256::from(0xabu8)]);
        }
        for v in values {
            let mut text = String::from("x");
            push_hex(&mut text, &v);
            assert_eq!(text, format!("x{v:x}"), "{v}");
        }
    }
}
