//! The outbox encoding of events (backend/matching/codec.py, generic layout) in native code:
//! byte for byte what `codec.encode_events` writes, for the events of either engine.

use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyList, PyString};

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

/// Lower-case hex of `v` without leading zeros ("0" for zero), as Python's "%x".
pub fn push_hex(text: &mut String, v: &crate::num::U256) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let bits = v.bit_len();
    if bits == 0 {
        text.push('0');
        return;
    }
    let limbs = v.as_limbs();
    let mut buf = [0u8; 64];
    let n = bits.div_ceil(4);
    for i in 0..n {
        let nib = (limbs[i / 16] >> ((i % 16) * 4)) & 0xF;
        buf[n - 1 - i] = DIGITS[nib as usize];
    }
    // SAFETY: ASCII hex digits only.
    text.push_str(unsafe { std::str::from_utf8_unchecked(&buf[..n]) });
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
