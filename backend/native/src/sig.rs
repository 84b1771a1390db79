//! The signature check of the API's hot path (`backend.eip712.signed`): strict parsing of one
//! signed message's JSON fields, its EIP-712 digest and the signer's recovery (libsecp256k1,
//! low-s only), in one call that holds the GIL only to read the fields and build the answer.
//!
//! It accepts exactly what `backend.eip712.parsing` accepts. It never words a refusal: on any
//! it answers None and the caller runs the reference parser, whose error is the answer (so the
//! codes and messages are the reference's by construction, and the tests prove both refuse
//! the same inputs).

use std::sync::{Mutex, OnceLock};

use rustc_hash::FxHashMap;

use pyo3::prelude::*;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyBytes, PyDict, PyInt, PyString};
use ruint::aliases::U256;
use secp256k1::Message;
use secp256k1::ecdsa::{RecoverableSignature, RecoveryId};
use sha3::{Digest, Keccak256};

use crate::slots::Slotted;

#[derive(Clone, Copy)]
enum Ty {
    Address,
    Uint(u32), // bits
    Enum(u8),  // largest member value (`side`, `timeInForce`: JSON integers)
    Bytes32,
}

impl Ty {
    fn sol(self) -> &'static str {
        match self {
            Ty::Address => "address",
            Ty::Uint(256) => "uint256",
            Ty::Uint(64) => "uint64",
            Ty::Uint(16) => "uint16",
            Ty::Uint(_) => unreachable!("no such width in the messages"),
            Ty::Enum(_) => "uint8",
            Ty::Bytes32 => "bytes32",
        }
    }
}

/// The signed messages (backend/eip712/messages.py), in the kind order of `signed.KINDS`.
const MESSAGES: [(&str, &[(&str, Ty)]); 4] = [
    (
        "Order",
        &[
            ("trader", Ty::Address),
            ("baseToken", Ty::Address),
            ("quoteToken", Ty::Address),
            ("side", Ty::Enum(1)),
            ("price", Ty::Uint(256)),
            ("amount", Ty::Uint(256)),
            ("timeInForce", Ty::Enum(3)),
            ("nonce", Ty::Uint(64)),
            ("expiry", Ty::Uint(64)),
            ("maxFeeBps", Ty::Uint(16)),
        ],
    ),
    ("Cancel", &[("trader", Ty::Address), ("orderHash", Ty::Bytes32)]),
    ("CancelAll", &[("trader", Ty::Address), ("baseToken", Ty::Address), ("quoteToken", Ty::Address), ("nonceBelow", Ty::Uint(64))]),
    ("Withdrawal", &[("trader", Ty::Address), ("token", Ty::Address), ("amount", Ty::Uint(256)), ("nonce", Ty::Uint(64)), ("expiry", Ty::Uint(64))]),
];

const MAX_FIELDS: usize = 10;

/// secp256k1's group order n, and n / 2 (the low-s bound), big-endian.
const N: [u8; 32] = hex32("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141");
const HALF_N: [u8; 32] = hex32("7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0");

const fn hex32(s: &str) -> [u8; 32] {
    let b = s.as_bytes();
    let mut out = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        out[i] = (nibble(b[2 * i]).unwrap() << 4) | nibble(b[2 * i + 1]).unwrap();
        i += 1;
    }
    out
}

const fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

pub(crate) fn keccak(parts: &[&[u8]]) -> [u8; 32] {
    let mut k = Keccak256::new();
    for p in parts {
        k.update(p);
    }
    k.finalize().into()
}

/// keccak of each message's EIP-712 `encodeType` (computed once).
fn type_hashes() -> &'static [[u8; 32]; 4] {
    static HASHES: OnceLock<[[u8; 32]; 4]> = OnceLock::new();
    HASHES.get_or_init(|| {
        MESSAGES.map(|(name, fields)| {
            let body: Vec<String> = fields.iter().map(|(n, t)| format!("{} {n}", t.sol())).collect();
            keccak(&[format!("{name}({})", body.join(",")).as_bytes()])
        })
    })
}

/// A field as read under the GIL: the text of a string (a range of one shared buffer), or the
/// value of an exact int.
enum Raw {
    Str(usize, usize),
    Int(i64),
}

/// A field once checked: its 32-byte EIP-712 encoding and what Python gets back.
enum Value {
    Address { word: [u8; 32], checksummed: String },
    Uint { word: [u8; 32], value: U256 },
    Bytes32([u8; 32]),
}

impl Value {
    fn word(&self) -> &[u8; 32] {
        match self {
            Value::Address { word, .. } | Value::Uint { word, .. } | Value::Bytes32(word) => word,
        }
    }
}

struct Checked {
    values: Vec<Value>,
    signature: [u8; 65],
    digest: [u8; 32],
    signer: Option<[u8; 20]>,
}

fn hex_decode(s: &[u8], out: &mut [u8]) -> Option<()> {
    if s.len() != 2 * out.len() {
        return None;
    }
    for (i, o) in out.iter_mut().enumerate() {
        *o = (nibble(s[2 * i])? << 4) | nibble(s[2 * i + 1])?;
    }
    Some(())
}

/// EIP-55 of a 20-byte address.
pub(crate) fn checksummed(raw: &[u8; 20]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut lower = [0u8; 40];
    for (i, b) in raw.iter().enumerate() {
        lower[2 * i] = HEX[(b >> 4) as usize];
        lower[2 * i + 1] = HEX[(b & 15) as usize];
    }
    let h = keccak(&[&lower]);
    let mut out = String::with_capacity(42);
    out.push_str("0x");
    for (i, c) in lower.iter().enumerate() {
        let n = if i % 2 == 0 { h[i / 2] >> 4 } else { h[i / 2] & 15 };
        out.push(if n >= 8 { c.to_ascii_uppercase() as char } else { *c as char });
    }
    out
}

/// Accepted address texts and their EIP-55 form: traders and tokens repeat, and the checksum
/// costs a Keccak (as `parsing._checksummed`'s cache). Emptied when full.
static ADDRESSES: Mutex<Option<FxHashMap<[u8; 42], [u8; 42]>>> = Mutex::new(None);
const ADDRESS_CACHE_MAX: usize = 1 << 16;

/// `parsing.parse_address`: 0x + 40 hex digits; mixed case must be the EIP-55 checksum.
fn address(s: &str) -> Option<Value> {
    let b = s.as_bytes();
    if b.len() != 42 || &b[..2] != b"0x" {
        return None;
    }
    let mut raw = [0u8; 20];
    hex_decode(&b[2..], &mut raw)?;
    let mut word = [0u8; 32];
    word[12..].copy_from_slice(&raw);
    let key: [u8; 42] = b.try_into().expect("42 bytes");
    let mut cache = ADDRESSES.lock().unwrap_or_else(|p| p.into_inner());
    let cache = cache.get_or_insert_with(FxHashMap::default);
    if let Some(known) = cache.get(&key) {
        let checksummed = std::str::from_utf8(known).expect("ASCII").to_owned();
        return Some(Value::Address { word, checksummed });
    }
    let checksummed = checksummed(&raw);
    let body = &b[2..];
    let mixed = body.iter().any(u8::is_ascii_lowercase) && body.iter().any(u8::is_ascii_uppercase);
    if mixed && s != checksummed {
        return None;
    }
    if cache.len() >= ADDRESS_CACHE_MAX {
        cache.clear();
    }
    cache.insert(key, checksummed.as_bytes().try_into().expect("42 bytes"));
    Some(Value::Address { word, checksummed })
}

/// `parsing.parse_uint`: `0|[1-9][0-9]{0,77}`, at most `bits` wide.
fn uint(s: &str, bits: u32) -> Option<Value> {
    let b = s.as_bytes();
    if b.is_empty() || b.len() > 78 || (b.len() > 1 && b[0] == b'0') || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let value = U256::from_str_radix(s, 10).ok()?; // wider than 256 bits: refused
    if value.bit_len() > bits as usize {
        return None;
    }
    Some(Value::Uint { word: value.to_be_bytes::<32>(), value })
}

fn field(text: &str, raw: &Raw, ty: Ty) -> Option<Value> {
    let raw = match raw {
        Raw::Str(a, b) => Ok(&text[*a..*b]),
        Raw::Int(i) => Err(*i),
    };
    match (raw, ty) {
        (Ok(s), Ty::Address) => address(s),
        (Ok(s), Ty::Uint(bits)) => uint(s, bits),
        (Ok(s), Ty::Bytes32) => {
            let b = s.as_bytes();
            let mut out = [0u8; 32];
            if b.len() < 2 || &b[..2] != b"0x" {
                return None;
            }
            hex_decode(&b[2..], &mut out)?;
            Some(Value::Bytes32(out))
        }
        (Err(v), Ty::Enum(max)) if (0..=max as i64).contains(&v) => {
            let value = U256::from(v as u64);
            Some(Value::Uint { word: value.to_be_bytes::<32>(), value })
        }
        _ => None,
    }
}

/// `parsing.parse_signature`: 65 bytes r ‖ s ‖ v, v ∈ {0, 1, 27, 28} (normalised to 27/28),
/// 0 < r < n, 0 < s ≤ n/2.
fn signature(s: &str) -> Option<[u8; 65]> {
    let b = s.as_bytes();
    if b.len() < 2 || &b[..2] != b"0x" {
        return None;
    }
    let mut raw = [0u8; 65];
    hex_decode(&b[2..], &mut raw)?;
    raw[64] = match raw[64] {
        0 | 1 => raw[64] + 27,
        27 | 28 => raw[64],
        _ => return None,
    };
    let (r, s) = (&raw[..32], &raw[32..64]);
    let zero = [0u8; 32];
    if r == zero || r >= &N[..] || s == zero || s > &HALF_N[..] {
        return None;
    }
    Some(raw)
}

/// The 20-byte address whose key signed `digest` (None: no key recovers).
fn recover(digest: &[u8; 32], sig: &[u8; 65]) -> Option<[u8; 20]> {
    let rs = RecoverableSignature::from_compact(&sig[..64], RecoveryId::from_u8_masked(sig[64] - 27)).ok()?;
    let key = rs.recover_ecdsa(Message::from_digest(*digest)).ok()?;
    let h = keccak(&[&key.serialize_uncompressed()[1..]]);
    let mut out = [0u8; 20];
    out.copy_from_slice(&h[12..]);
    Some(out)
}

/// `text` holds the fields' strings, then the signature's (from `sig_at` on).
fn check(kind: usize, text: &str, raws: &[Raw], sig_at: usize, separator: &[u8; 32]) -> Option<Checked> {
    let fields = MESSAGES[kind].1;
    let mut values = Vec::with_capacity(fields.len());
    for (raw, (_, ty)) in raws.iter().zip(fields) {
        values.push(field(text, raw, *ty)?);
    }
    let signature = signature(&text[sig_at..])?;
    let mut k = Keccak256::new();
    k.update(type_hashes()[kind]);
    for v in &values {
        k.update(v.word());
    }
    let struct_hash: [u8; 32] = k.finalize().into();
    let digest = keccak(&[b"\x19\x01", separator, &struct_hash]);
    let signer = recover(&digest, &signature);
    Some(Checked { values, signature, digest, signer })
}

/// The Python classes the check builds its answer from (set by `sig_configure`).
struct SigConfig {
    messages: Vec<Slotted>,
    names: Vec<Vec<Py<PyString>>>, // interned field names: dict lookups hash nothing
    signed: Slotted,
    sides: Vec<Py<PyAny>>,
    tifs: Vec<Py<PyAny>>,
}

static SIG_CONFIG: PyOnceLock<SigConfig> = PyOnceLock::new();

/// Configure the check: the message classes in kind order (Order, Cancel, CancelAll,
/// Withdrawal), the `Signed` class (fields message, signature, digest, signer,
/// trader_signed) and the Side and TimeInForce members in value order.
#[pyfunction]
pub(crate) fn sig_configure(py: Python<'_>, messages: Vec<Bound<'_, PyAny>>, signed: Bound<'_, PyAny>, sides: Vec<Py<PyAny>>, tifs: Vec<Py<PyAny>>) -> PyResult<()> {
    if messages.len() != MESSAGES.len() || sides.len() != 2 || tifs.len() != 4 {
        return Err(PyValueError::new_err("sig_configure: wrong number of classes or members"));
    }
    let mut slotted = Vec::with_capacity(MESSAGES.len());
    let mut names = Vec::with_capacity(MESSAGES.len());
    for (cls, (name, fields)) in messages.iter().zip(MESSAGES) {
        let have: Vec<String> = cls.getattr("__dataclass_fields__")?.cast::<PyDict>()?.keys().extract()?;
        let want: Vec<&str> = fields.iter().map(|f| f.0).collect();
        if have != want {
            return Err(PyValueError::new_err(format!("sig_configure: {name} fields are {have:?}, not {want:?}")));
        }
        // Fields are strs, ints, bytes and enum members: no cycle can pass through a message,
        // so it is built untracked (as the core's events) and the collector never walks it.
        let mut message = Slotted::new(cls, None)?;
        message.untrack = true;
        slotted.push(message);
        names.push(want.iter().map(|n| PyString::intern(py, n).unbind()).collect());
    }
    let mut signed = Slotted::new(&signed, Some(&["message", "signature", "digest", "signer", "trader_signed"]))?;
    signed.untrack = true; // its message is untracked too, and the rest are atoms
    let _ = SIG_CONFIG.set(py, SigConfig { messages: slotted, names, signed, sides, tifs });
    Ok(())
}

/// Check one signed message of `kind` (0 Order, 1 Cancel, 2 CancelAll, 3 Withdrawal): its
/// JSON object, the signature's 0x-hex and the domain separator. Returns a `Signed` (the
/// message, the 65-byte signature with v ∈ {27, 28}, the digest, the signer's 20 bytes or None
/// if no key recovers, whether the signer is the message's trader), or None if the reference
/// parser refuses the input.
#[pyfunction]
pub(crate) fn sig_check<'py>(py: Python<'py>, kind: usize, message: &Bound<'py, PyAny>, signature: &Bound<'py, PyAny>, separator: &[u8]) -> PyResult<Option<Bound<'py, PyAny>>> {
    let cfg = SIG_CONFIG.get(py).ok_or_else(|| PyRuntimeError::new_err("backend._native.sig_configure() was not called"))?;
    let Some(&(_, fields)) = MESSAGES.get(kind) else {
        return Err(PyValueError::new_err("sig_check: unknown message kind"));
    };
    let separator: [u8; 32] = separator.try_into().map_err(|_| PyValueError::new_err("sig_check: a domain separator is 32 bytes"))?;
    let Ok(dict) = message.cast_exact::<PyDict>() else { return Ok(None) }; // a subclass may override lookups
    if dict.len() != fields.len() {
        return Ok(None);
    }
    let mut raws: Vec<Raw> = Vec::with_capacity(MAX_FIELDS);
    let mut given: Vec<Bound<'py, PyAny>> = Vec::with_capacity(MAX_FIELDS);
    let mut text = String::with_capacity(512);
    for ((_, ty), name) in fields.iter().zip(&cfg.names[kind]) {
        let Some(v) = dict.get_item(name.bind(py))? else { return Ok(None) };
        let raw = if let Ty::Enum(_) = ty {
            // `type(value) is int`: bool (an int subclass) is refused
            if !v.is_exact_instance_of::<PyInt>() {
                return Ok(None);
            }
            match v.extract::<i64>() {
                Ok(i) => Raw::Int(i),
                Err(_) => return Ok(None),
            }
        } else {
            let Ok(s) = v.cast::<PyString>() else { return Ok(None) };
            let Ok(s) = s.to_str() else { return Ok(None) };
            text.push_str(s);
            Raw::Str(text.len() - s.len(), text.len())
        };
        raws.push(raw);
        given.push(v);
    }
    let Ok(sig) = signature.cast::<PyString>() else { return Ok(None) };
    let Ok(sig) = sig.to_str() else { return Ok(None) };
    let sig_at = text.len();
    text.push_str(sig);
    let Some(c) = py.detach(move || check(kind, &text, &raws, sig_at, &separator)) else { return Ok(None) };
    let mut values: Vec<Bound<'py, PyAny>> = Vec::with_capacity(c.values.len());
    for ((v, (name, _)), given) in c.values.iter().zip(fields).zip(given) {
        values.push(match v {
            // the text sent is most often the checksummed form already: no new string then
            Value::Address { checksummed, .. } if given.is_exact_instance_of::<PyString>() && given.cast::<PyString>()?.to_str()? == checksummed => given,
            Value::Address { checksummed, .. } => PyString::new(py, checksummed).into_any(),
            Value::Uint { value, .. } if *name == "side" => cfg.sides[value.to::<usize>()].bind(py).clone(),
            Value::Uint { value, .. } if *name == "timeInForce" => cfg.tifs[value.to::<usize>()].bind(py).clone(),
            Value::Uint { value, .. } => crate::pylong::int_of(py, value)?,
            Value::Bytes32(b) => PyBytes::new(py, b).into_any(),
        });
    }
    let trader_signed = match (&c.signer, c.values.first()) {
        (Some(s), Some(Value::Address { word, .. })) => word[12..] == s[..],
        _ => false,
    };
    let signer = match c.signer {
        Some(s) => PyBytes::new(py, &s).into_any(),
        None => py.None().into_bound(py),
    };
    let msg = cfg.messages[kind].build_vec(py, values)?;
    let signed = cfg.signed.build(py, [msg, PyBytes::new(py, &c.signature).into_any(), PyBytes::new(py, &c.digest).into_any(), signer, PyBool::new(py, trader_signed).to_owned().into_any()])?;
    Ok(Some(signed))
}

/// libsecp256k1's public-key recovery alone (digest given, 64-byte compact signature and
/// recovery id): the floor `bench/sig.py` compares the check with. Returns the 65-byte key.
#[pyfunction]
pub(crate) fn sig_recover_only<'py>(py: Python<'py>, digest: &[u8], compact: &[u8], recid: u8) -> PyResult<Bound<'py, PyBytes>> {
    let bad = |_| PyValueError::new_err("no key recovers");
    let rs = RecoverableSignature::from_compact(compact, RecoveryId::from_u8_masked(recid)).map_err(bad)?;
    let digest: [u8; 32] = digest.try_into().map_err(|_| PyValueError::new_err("a digest is 32 bytes"))?;
    let key = rs.recover_ecdsa(Message::from_digest(digest)).map_err(bad)?;
    Ok(PyBytes::new(py, &key.serialize_uncompressed()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eip55_of_a_known_address() {
        let mut raw = [0u8; 20];
        hex_decode(b"5fbdb2315678afecb367f032d93f642f64180aa3", &mut raw).unwrap();
        assert_eq!(checksummed(&raw), "0x5FbDB2315678afecb367f032d93F642f64180aa3");
    }

    #[test]
    fn half_n_is_n_over_two() {
        let n = U256::from_be_bytes(N);
        assert_eq!(U256::from_be_bytes(HALF_N), n >> 1);
    }

    #[test]
    fn uints_are_strict() {
        assert!(uint("0", 16).is_some());
        assert!(uint("65535", 16).is_some());
        assert!(uint("65536", 16).is_none());
        assert!(uint("01", 64).is_none());
        assert!(uint("", 64).is_none());
        assert!(uint("+1", 64).is_none());
        let max = "115792089237316195423570985008687907853269984665640564039457584007913129639935";
        assert!(uint(max, 256).is_some());
        assert!(uint("115792089237316195423570985008687907853269984665640564039457584007913129639936", 256).is_none());
    }
}
