//! `backend._native`: the engine core for Python. Commands and events cross the boundary as
//! the existing dataclasses of `backend.matching.commands` / `.events`; the state machine is
//! `core::Engine`. A `Fault` (arithmetic the invariants rule out) or a Rust panic poisons the
//! engine: it raises, and refuses every later command, since its state may be half-applied.

mod codec;
mod core;
mod evenc;
mod journal;
mod num;
mod pylong;
mod record;
mod sig;
mod slots;
mod snap;

use std::fmt::Write as _;
use std::panic::{AssertUnwindSafe, catch_unwind};

use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyByteArray, PyBytes, PyList, PyString, PyTuple};
use pyo3::{intern, IntoPyObjectExt};

use crate::core::*;
use crate::num::*;
use crate::slots::Slotted;

/// The dataclass fields of each command class, in order (COMMAND_TYPES order); the binding
/// reads them by position.
const COMMAND_FIELDS: [&[&str]; 15] = [
    &["seq", "now", "order_hash", "trader", "market_id", "side", "price", "amount", "time_in_force", "nonce", "expiry", "client_order_id"],
    &["seq", "now", "order_hash", "trader"],
    &["seq", "now", "trader", "market_id", "nonce_below"],
    &["seq", "now", "trader", "token", "amount"],
    &["seq", "now", "trader", "token", "amount", "withdrawal_id"],
    &["seq", "now", "trader", "token", "amount", "withdrawal_id"],
    &["seq", "now", "withdrawal_id"],
    &["seq", "now", "trader"],
    &["seq", "now", "spec"],
    &["seq", "now", "market_id", "state"],
    &["seq", "now"],
    &["seq", "now", "fill_seq", "fill_index", "market_id", "maker_hash", "maker_trader", "taker_hash", "taker_trader", "taker_side", "price", "amount", "quote_amount", "maker_fee", "taker_fee"],
    &["seq", "now", "trader", "time", "nonce"],
    &["seq", "now", "trader", "connection_id", "deadline"],
    &["seq", "now", "trader", "connection_id"],
];


/// Position of `name` in `names` (at compile time: a wrong name does not build).
const fn field_pos(names: &[&str], name: &str) -> usize {
    let mut i = 0;
    while i < names.len() {
        let (a, b) = (names[i].as_bytes(), name.as_bytes());
        if a.len() == b.len() {
            let mut j = 0;
            while j < a.len() && a[j] == b[j] {
                j += 1;
            }
            if j == a.len() {
                return i;
            }
        }
        i += 1;
    }
    panic!("no such command field")
}

/// The Python classes and enum members the binding builds events from (set by `configure`).
pub(crate) struct Config {
    pub(crate) commands: Vec<Py<PyAny>>,
    pub(crate) cmd_slots: Vec<Slotted>,
    pub(crate) ev_slots: Vec<Slotted>,
    pub(crate) ev_kinds: Vec<Vec<codec::Kind>>,
    /// Per event field: a trader, market or token, whose decoded text is shared (`shared_text`).
    pub(crate) ev_shared: Vec<Vec<bool>>,
    pub(crate) sides: Vec<Py<PyAny>>,
    pub(crate) tifs: Vec<Py<PyAny>>,
    pub(crate) states: Vec<Py<PyAny>>,
    pub(crate) reasons: Vec<Py<PyAny>>,
    pub(crate) codes: Vec<Py<PyAny>>,
    pub(crate) code_values: Vec<u16>,
    invariant_error: Py<PyAny>,
}

static CONFIG: PyOnceLock<Config> = PyOnceLock::new();

pub(crate) fn cfg(py: Python<'_>) -> PyResult<&Config> {
    CONFIG.get(py).ok_or_else(|| PyRuntimeError::new_err("backend._native.configure() was not called"))
}

#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn configure(
    py: Python<'_>,
    commands: Vec<Py<PyAny>>,
    events: Vec<Py<PyAny>>,
    sides: Vec<Py<PyAny>>,
    tifs: Vec<Py<PyAny>>,
    states: Vec<Py<PyAny>>,
    reasons: Vec<Py<PyAny>>,
    codes: Vec<Py<PyAny>>,
    invariant_error: Py<PyAny>,
) -> PyResult<()> {
    if commands.len() != COMMAND_FIELDS.len() || events.len() != 17 || sides.len() != 2 || tifs.len() != 4 || states.len() != 4 || reasons.len() != 9 || codes.len() != Code::NAMES.len() {
        return Err(PyValueError::new_err("configure: wrong number of classes or members"));
    }
    let mut cmd_slots = Vec::with_capacity(COMMAND_FIELDS.len());
    for (cls, names) in commands.iter().zip(COMMAND_FIELDS) {
        let cls = cls.bind(py);
        let fields: Vec<String> = cls.getattr("__dataclass_fields__")?.cast::<pyo3::types::PyDict>()?.keys().extract()?;
        if fields != names {
            return Err(PyValueError::new_err(format!("configure: {} fields are {fields:?}, not {names:?}", cls.str()?)));
        }
        cmd_slots.push(Slotted::new(cls, None)?);
    }
    let mut ev_slots = events.iter().map(|cls| Slotted::new(cls.bind(py), None)).collect::<PyResult<Vec<_>>>()?;
    let mut ev_kinds = Vec::with_capacity(events.len());
    let mut ev_shared = Vec::with_capacity(events.len());
    for cls in &events {
        let fields = cls.bind(py).getattr("__dataclass_fields__")?;
        let mut kinds = Vec::new();
        let mut shared = Vec::new();
        for (name, f) in fields.cast::<pyo3::types::PyDict>()?.iter() {
            let annotation = f.getattr("type")?.str()?.to_string();
            let kind = codec::Kind::of(&annotation).ok_or_else(|| PyValueError::new_err(format!("configure: no encoding for {annotation}")))?;
            let name = name.extract::<String>()?;
            shared.push(kind == codec::Kind::Str && matches!(name.as_str(), "trader" | "maker_trader" | "taker_trader" | "market_id" | "token"));
            kinds.push(kind);
        }
        ev_kinds.push(kinds);
        ev_shared.push(shared);
    }
    // Every event field has an encoding kind, and every kind is an atom (int, str, bytes, an
    // enum member, or None): the events cannot be in a cycle, so they are built untracked.
    for s in &mut ev_slots {
        s.untrack = true;
    }
    let code_values = codes.iter().map(|m| m.bind(py).getattr("value")?.extract::<u16>()).collect::<PyResult<Vec<_>>>()?;
    let _ = CONFIG.set(py, Config { commands, cmd_slots, ev_slots, ev_kinds, ev_shared, sides, tifs, states, reasons, codes, code_values, invariant_error });
    Ok(())
}

/// A copy of an engine command with its `seq` and `now` set (what `dataclasses.replace` gives,
/// without calling `__init__`): the sequencer stamps every command it journals.
#[pyfunction]
fn stamp<'py>(py: Python<'py>, command: &Bound<'py, PyAny>, seq: &Bound<'py, PyAny>, now: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let c = cfg(py)?;
    let tp = command.get_type();
    let Some(kind) = c.commands.iter().position(|t| t.as_ptr() == tp.as_ptr()) else {
        return Err(PyTypeError::new_err(format!("not an engine command: {}", tp.name()?)));
    };
    let cs = &c.cmd_slots[kind];
    let n = cs.offsets.len();
    let mut values: Vec<Bound<'py, PyAny>> = Vec::with_capacity(n);
    values.push(seq.clone());
    values.push(now.clone());
    for i in 2..n {
        values.push(cs.get(command, i)?);
    }
    cs.build_vec(py, values)
}

/// `stamp(command, seq, now)` and the stamped command's journal record without an intake
/// (`records.encode_record(stamped)`: u32 length + packed encoding) in one call, the two
/// per-command steps of a group commit; the record is None when the command takes the generic
/// layout (the Python encoder writes it).
#[pyfunction]
fn stamp_record<'py>(py: Python<'py>, command: &Bound<'py, PyAny>, seq: &Bound<'py, PyAny>, now: &Bound<'py, PyAny>) -> PyResult<(Bound<'py, PyAny>, Option<Bound<'py, PyBytes>>)> {
    let stamped = stamp(py, command, seq, now)?;
    let mut out: Vec<u8> = Vec::with_capacity(164);
    out.extend_from_slice(&[0; 4]);
    if !codec::encode_packed(py, &stamped, &mut out)? {
        return Ok((stamped, None));
    }
    let n = u32::try_from(out.len() - 4).map_err(|_| PyValueError::new_err("command too long"))?;
    out[..4].copy_from_slice(&n.to_le_bytes());
    Ok((stamped, Some(PyBytes::new(py, &out))))
}

/// `stamp_record` for a whole group: the commands stamped with seqs `first_seq`, `first_seq`+1…
/// and `now` (each command's own `now` when None), and their records (None where the command
/// takes the generic layout). One call per group, so that a group commit's stamping costs no
/// Python call per command.
#[pyfunction]
#[pyo3(signature = (commands, first_seq, now=None))]
fn stamp_records<'py>(py: Python<'py>, commands: &Bound<'py, PyList>, first_seq: u64, now: Option<&Bound<'py, PyAny>>) -> PyResult<(Bound<'py, PyList>, Bound<'py, PyList>)> {
    let c = cfg(py)?;
    let stamped = PyList::empty(py);
    let records = PyList::empty(py);
    let mut out: Vec<u8> = Vec::with_capacity(256);
    for (i, command) in commands.iter().enumerate() {
        let seq = first_seq.checked_add(i as u64).ok_or_else(|| PyValueError::new_err("seq beyond 2**64"))?.into_bound_py_any(py)?;
        let own_now;
        let now = match now {
            Some(n) => n,
            None => {
                let tp = command.get_type();
                let Some(kind) = c.commands.iter().position(|t| t.as_ptr() == tp.as_ptr()) else {
                    return Err(PyTypeError::new_err(format!("not an engine command: {}", tp.name()?)));
                };
                own_now = c.cmd_slots[kind].get(&command, 1)?;
                &own_now
            }
        };
        let cmd = stamp(py, &command, &seq, now)?;
        out.clear();
        out.extend_from_slice(&[0; 4]);
        if codec::encode_packed(py, &cmd, &mut out)? {
            let n = u32::try_from(out.len() - 4).map_err(|_| PyValueError::new_err("command too long"))?;
            out[..4].copy_from_slice(&n.to_le_bytes());
            records.append(PyBytes::new(py, &out))?;
        } else {
            records.append(py.None())?;
        }
        stamped.append(cmd)?;
    }
    Ok((stamped, records))
}

/// The command in `buf[start:end]` if it is in a packed layout (PlaceOrder, CancelOrder: the
/// engine port's wire form and the journal's records), as `codec.decode_command_at` builds
/// it; None for any other layout and for damaged bytes, which the Python decoder then reads
/// and refuses with its own message. Traders and markets are shared str objects, as there.
#[pyfunction]
fn decode_packed<'py>(py: Python<'py>, buf: &Bound<'py, PyAny>, start: usize, end: usize) -> PyResult<Option<Bound<'py, PyAny>>> {
    let Ok(b) = buf.cast::<PyBytes>() else { return Ok(None) };
    let Some(body) = b.as_bytes().get(start..end) else { return Ok(None) };
    let Some(cmd) = record::parse(body) else { return Ok(None) };
    let c = cfg(py)?;
    let int = |v: u64| v.into_bound_py_any(py);
    Ok(Some(match cmd {
        record::Packed::Place { seq, now, price, amount, nonce, expiry, h, trader, market, side, tif, coid } => {
            let coid = match coid {
                Some(t) => PyString::new(py, t).into_any(),
                None => py.None().into_bound(py),
            };
            c.cmd_slots[0].build(py, [
                int(seq)?,
                int(now)?,
                PyBytes::new(py, h).into_any(),
                shared_text(py, trader),
                shared_text(py, market),
                c.sides[side as usize].bind(py).clone(),
                int(price)?,
                int(amount)?,
                c.tifs[tif as usize].bind(py).clone(),
                int(nonce)?,
                int(expiry)?,
                coid,
            ])?
        }
        record::Packed::Cancel { seq, now, h, trader } => c.cmd_slots[1].build(py, [int(seq)?, int(now)?, PyBytes::new(py, h).into_any(), shared_text(py, trader)])?,
    }))
}

/// One str object per trader or market text seen lately (cleared past 100,000, as the Python
/// decoder's cache): decoded commands then share them, which keeps dict lookups cheap.
pub(crate) fn shared_text<'py>(py: Python<'py>, text: &str) -> Bound<'py, PyAny> {
    static TEXTS: std::sync::Mutex<Option<std::collections::HashMap<Box<str>, Py<PyString>>>> = std::sync::Mutex::new(None);
    let mut guard = TEXTS.lock().unwrap_or_else(|e| e.into_inner());
    let map = guard.get_or_insert_with(std::collections::HashMap::new);
    if let Some(s) = map.get(text) {
        return s.bind(py).clone().into_any();
    }
    if map.len() >= 100_000 {
        map.clear();
    }
    let s = PyString::new(py, text);
    map.insert(text.into(), s.clone().unbind());
    s.into_any()
}

// ---------------------------------------------------------------------- conversions

pub(crate) fn pint(ob: &Bound<'_, PyAny>) -> PyResult<PInt> {
    if !ob.is_instance_of::<pyo3::types::PyInt>() {
        return Err(PyTypeError::new_err("expected an int"));
    }
    match pylong::read_u256(ob) {
        Some(Ok(v)) => return Ok(PInt::Val(v)),
        Some(Err(true)) => return Ok(PInt::Neg),
        Some(Err(false)) => return Ok(PInt::Big),
        None => {}
    }
    #[cfg(not(Py_3_13))]
    // SAFETY: ob is an int; the buffer holds the 32 bytes asked for.
    unsafe {
        let mut buf = [0u8; 32];
        if pyo3::ffi::_PyLong_AsByteArray(ob.as_ptr() as *mut pyo3::ffi::PyLongObject, buf.as_mut_ptr(), 32, 1, 0) == 0 {
            return Ok(PInt::Val(U256::from_le_bytes(buf)));
        }
        pyo3::ffi::PyErr_Clear(); // negative, or wider than 256 bits: told apart below
    }
    if ob.lt(0)? {
        return Ok(PInt::Neg);
    }
    match ob.call_method1(intern!(ob.py(), "to_bytes"), (32, intern!(ob.py(), "little"))) {
        Ok(b) => {
            let b = b.cast_into::<PyBytes>()?;
            Ok(PInt::Val(U256::try_from_le_slice(b.as_bytes()).expect("32 bytes")))
        }
        Err(_) => Ok(PInt::Big),
    }
}

fn i128_of(ob: &Bound<'_, PyAny>) -> PyResult<i128> {
    if ob.is_exact_instance_of::<pyo3::types::PyInt>()
        && let Some(v) = pylong::read_small_i64(ob)
    {
        return Ok(v as i128);
    }
    ob.extract::<i128>()
}

#[pyclass(subclass, module = "backend._native", name = "Core")]
pub struct Core {
    e: Engine,
    /// The Python string object of each symbol (the first seen, reused for every event).
    strs: Vec<Option<Py<PyString>>>,
    poisoned: Option<String>,
    /// `apply_answer`'s buffer, kept between calls so that no command allocates one.
    scratch: Vec<u8>,
    /// The symbol of each str object seen lately, by address: commands share their trader and
    /// market str objects (the decoders' caches), so most lookups hash a pointer, not a text.
    /// The entry holds the object, so its address cannot be reused while it is cached.
    by_ptr: rustc_hash::FxHashMap<usize, (Py<PyString>, Sym)>,
    /// The core's events of the command being applied, kept between commands (no allocation).
    evs: Vec<Ev>,
}

/// Entries of `Core::by_ptr` before it is emptied (traders and markets active at once).
const SYMS_BY_PTR: usize = 1 << 14;

impl Core {
    fn sym(&mut self, ob: &Bound<'_, PyAny>) -> PyResult<Sym> {
        let key = ob.as_ptr() as usize;
        if let Some((_, k)) = self.by_ptr.get(&key) {
            return Ok(*k);
        }
        let s = ob.cast::<PyString>().map_err(|_| PyTypeError::new_err("expected a str"))?;
        let k = self.e.syms.get(s.to_str()?);
        let i = k as usize;
        if self.strs.len() <= i {
            self.strs.resize_with(i + 1, || None);
        }
        if self.strs[i].is_none() {
            self.strs[i] = Some(s.clone().unbind());
        }
        if self.by_ptr.len() >= SYMS_BY_PTR {
            self.by_ptr.clear();
        }
        self.by_ptr.insert(key, (s.clone().unbind(), k));
        Ok(k)
    }

    fn opt_sym(&mut self, ob: &Bound<'_, PyAny>) -> PyResult<Option<Sym>> {
        if ob.is_none() { Ok(None) } else { self.sym(ob).map(Some) }
    }

    fn pystr<'py>(&mut self, py: Python<'py>, k: Sym) -> Bound<'py, PyAny> {
        let i = k as usize;
        if self.strs.len() <= i {
            self.strs.resize_with(i + 1, || None);
        }
        match &self.strs[i] {
            Some(s) => s.bind(py).clone().into_any(),
            None => {
                let s = PyString::new(py, self.e.syms.s(k));
                self.strs[i] = Some(s.clone().unbind());
                s.into_any()
            }
        }
    }

    fn check_usable(&self) -> PyResult<()> {
        match &self.poisoned {
            Some(why) => Err(PyRuntimeError::new_err(format!("engine stopped after a failure ({why}): restart it from its snapshot and journal"))),
            None => Ok(()),
        }
    }

    fn invariant(&self, py: Python<'_>, msg: String) -> PyErr {
        match CONFIG.get(py) {
            Some(c) => match c.invariant_error.bind(py).call1((msg.clone(),)) {
                Ok(err) => PyErr::from_value(err),
                Err(e) => e,
            },
            None => PyRuntimeError::new_err(msg),
        }
    }

    /// Apply `command`: the list of its event objects and, if `enc` is given, their encoding
    /// (`codec.encode_events`) appended to it, with false if the encoder declined (see evenc).
    fn apply_one<'py>(&mut self, py: Python<'py>, c: &Config, command: &Bound<'py, PyAny>, enc: Option<&mut Vec<u8>>) -> PyResult<(Bound<'py, PyList>, bool)> {
        self.check_usable()?;
        let ty = command.get_type();
        let tp = ty.as_ptr();
        let Some(kind) = c.commands.iter().position(|t| t.as_ptr() == tp) else {
            return Err(PyTypeError::new_err(format!("not an engine command: {}", ty.name()?)));
        };
        let cs = &c.cmd_slots[kind];
        macro_rules! f {
            ($k:literal, $n:literal) => {{
                const I: usize = field_pos(COMMAND_FIELDS[$k], $n);
                cs.get(command, I)?
            }};
        }
        let seq = i128_of(&cs.get(command, 0)?)?;
        let hash_obj;
        let hash_buf: &[u8];
        let maker_buf: Vec<u8>;
        let taker_buf: Vec<u8>;
        let coid_obj;
        let wid_obj;
        let cmd = match kind {
            0 => {
                hash_obj = f!(0, "order_hash");
                let h = hash_obj.cast::<PyBytes>().map_err(|_| PyTypeError::new_err("order_hash must be bytes"))?;
                hash_buf = h.as_bytes();
                coid_obj = f!(0, "client_order_id");
                let coid = if coid_obj.is_none() { None } else { Some(coid_obj.cast::<PyString>()?.to_str()?) };
                Cmd::Place {
                    now: i128_of(&f!(0, "now"))?,
                    h: hash_buf,
                    trader: self.sym(&f!(0, "trader"))?,
                    market: self.sym(&f!(0, "market_id"))?,
                    side: side_of(&f!(0, "side"))?,
                    price: pint(&f!(0, "price"))?,
                    amount: pint(&f!(0, "amount"))?,
                    tif: match f!(0, "time_in_force").extract::<u8>()? {
                        0 => Tif::Gtc,
                        1 => Tif::Ioc,
                        2 => Tif::Fok,
                        3 => Tif::PostOnly,
                        _ => return Err(PyValueError::new_err("bad time_in_force")),
                    },
                    nonce: pint(&f!(0, "nonce"))?,
                    expiry: pint(&f!(0, "expiry"))?,
                    coid,
                }
            }
            1 => {
                hash_obj = f!(1, "order_hash");
                hash_buf = hash_obj.cast::<PyBytes>().map_err(|_| PyTypeError::new_err("order_hash must be bytes"))?.as_bytes();
                Cmd::Cancel { h: hash_buf, trader: self.sym(&f!(1, "trader"))? }
            }
            2 => Cmd::CancelAll { trader: self.sym(&f!(2, "trader"))?, market: self.opt_sym(&f!(2, "market_id"))?, nonce_below: pint(&f!(2, "nonce_below"))? },
            3 => Cmd::Credit { trader: self.sym(&f!(3, "trader"))?, token: self.sym(&f!(3, "token"))?, amount: pint(&f!(3, "amount"))? },
            4 => {
                wid_obj = f!(4, "withdrawal_id");
                let wid = if wid_obj.is_none() { None } else { Some(wid_obj.cast::<PyString>()?.to_str()?) };
                Cmd::Debit { trader: self.sym(&f!(4, "trader"))?, token: self.sym(&f!(4, "token"))?, amount: pint(&f!(4, "amount"))?, wid }
            }
            5 => {
                wid_obj = f!(5, "withdrawal_id");
                let wid = wid_obj.cast::<PyString>()?.to_str()?;
                Cmd::Reserve { trader: self.sym(&f!(5, "trader"))?, token: self.sym(&f!(5, "token"))?, amount: pint(&f!(5, "amount"))?, wid }
            }
            6 => {
                wid_obj = f!(6, "withdrawal_id");
                Cmd::Release { wid: wid_obj.cast::<PyString>()?.to_str()? }
            }
            7 => Cmd::Freeze { trader: self.sym(&f!(7, "trader"))? },
            8 => {
                let spec = f!(8, "spec");
                macro_rules! sf {
                    ($n:literal) => {
                        spec.getattr(intern!(py, $n))?
                    };
                }
                Cmd::AddMarket {
                    spec: SpecIn {
                        market_id: self.sym(&sf!("market_id"))?,
                        base: self.sym(&sf!("base_token"))?,
                        quote: self.sym(&sf!("quote_token"))?,
                        tick: pint(&sf!("tick_size"))?,
                        lot: pint(&sf!("lot_size"))?,
                        min_amount: pint(&sf!("min_amount"))?,
                        maker_bps: pint(&sf!("maker_fee_bps"))?,
                        taker_bps: pint(&sf!("taker_fee_bps"))?,
                        state: state_of(&sf!("state"))?,
                        max_amount: pint(&sf!("max_amount"))?,
                        max_notional: pint(&sf!("max_notional"))?,
                        band_bps: pint(&sf!("price_band_bps"))?,
                        move_bps: pint(&sf!("breaker_move_bps"))?,
                        window_s: pint(&sf!("breaker_window_s"))?,
                    },
                }
            }
            9 => Cmd::SetState { market: self.sym(&f!(9, "market_id"))?, state: state_of(&f!(9, "state"))? },
            10 => Cmd::Sweep { now: i128_of(&f!(10, "now"))? },
            12 => Cmd::ScheduleCancel { now: i128_of(&f!(12, "now"))?, trader: self.sym(&f!(12, "trader"))?, time: pint(&f!(12, "time"))?, nonce: pint(&f!(12, "nonce"))? },
            13 => {
                wid_obj = f!(13, "connection_id");
                let conn = wid_obj.cast::<PyString>().map_err(|_| PyTypeError::new_err("connection_id must be a str"))?.to_str()?;
                Cmd::ArmDisconnect { now: i128_of(&f!(13, "now"))?, trader: self.sym(&f!(13, "trader"))?, conn, deadline: pint(&f!(13, "deadline"))? }
            }
            14 => {
                wid_obj = f!(14, "connection_id");
                let conn = wid_obj.cast::<PyString>().map_err(|_| PyTypeError::new_err("connection_id must be a str"))?.to_str()?;
                Cmd::CancelOnDisconnect { trader: self.sym(&f!(14, "trader"))?, conn }
            }
            _ => {
                let mh = f!(11, "maker_hash");
                maker_buf = mh.cast::<PyBytes>().map_err(|_| PyTypeError::new_err("maker_hash must be bytes"))?.as_bytes().to_vec();
                let th = f!(11, "taker_hash");
                taker_buf = th.cast::<PyBytes>().map_err(|_| PyTypeError::new_err("taker_hash must be bytes"))?.as_bytes().to_vec();
                Cmd::Revert {
                    fill_seq: i128_of(&f!(11, "fill_seq"))?,
                    fill_index: i128_of(&f!(11, "fill_index"))?,
                    market: self.sym(&f!(11, "market_id"))?,
                    maker_hash: &maker_buf,
                    maker_trader: self.sym(&f!(11, "maker_trader"))?,
                    taker_hash: &taker_buf,
                    taker_trader: self.sym(&f!(11, "taker_trader"))?,
                    taker_side: side_of(&f!(11, "taker_side"))?,
                    price: pint(&f!(11, "price"))?,
                    amount: pint(&f!(11, "amount"))?,
                    quote_amount: pint(&f!(11, "quote_amount"))?,
                    maker_fee: pint(&f!(11, "maker_fee"))?,
                    taker_fee: pint(&f!(11, "taker_fee"))?,
                }
            }
        };
        let mut events = std::mem::take(&mut self.evs);
        events.clear();
        let result = catch_unwind(AssertUnwindSafe(|| self.e.apply(seq, &cmd, &mut events)));
        match result {
            Ok(Ok(())) => {}
            Ok(Err(Fault(msg))) => {
                if msg.starts_with("sequence number must increase") {
                    // Checked before anything changed: the engine stays usable.
                    return Err(self.invariant(py, msg));
                }
                self.poisoned = Some(msg.clone());
                return Err(self.invariant(py, msg));
            }
            Err(panic) => {
                let msg = panic_message(&panic);
                self.poisoned = Some(format!("panic: {msg}"));
                return Err(PyRuntimeError::new_err(format!("engine core panicked: {msg}")));
            }
        }
        let encoded = match enc {
            Some(buf) => evenc::encode(&self.e, &c.code_values, seq, &cmd, &events, buf),
            None => true,
        };
        let seq_obj = cs.get(command, 0)?;
        let cmd_hash = match kind {
            0 | 1 => Some(cs.get(command, 2)?),
            _ => None,
        };
        let extra = match kind {
            0 => Some(cs.get(command, const { field_pos(COMMAND_FIELDS[0], "client_order_id") })?),
            2 => Some(cs.get(command, const { field_pos(COMMAND_FIELDS[2], "nonce_below") })?),
            _ => None,
        };
        // SAFETY: a new list of n NULL items, each set once below (a list dropped before all
        // are set, on an error, releases only those set: list_dealloc skips NULLs).
        let list = unsafe { Bound::from_owned_ptr_or_err(py, pyo3::ffi::PyList_New(events.len() as isize))?.cast_into_unchecked::<PyList>() };
        for (i, ev) in events.drain(..).enumerate() {
            let obj = self.event(py, c, &seq_obj, cmd_hash.as_ref(), extra.as_ref(), Some(command), ev)?;
            // SAFETY: i < n; the item takes the reference obj owned.
            unsafe { pyo3::ffi::PyList_SET_ITEM(list.as_ptr(), i as isize, obj.into_ptr()) };
        }
        self.evs = events;
        Ok((list, encoded))
    }

    fn hash_obj<'py>(py: Python<'py>, cmd_hash: Option<&Bound<'py, PyAny>>, h: H) -> Bound<'py, PyAny> {
        match h {
            H::Cmd => cmd_hash.expect("command hash").clone(),
            H::Own(b) => PyBytes::new(py, &b).into_any(),
        }
    }

    /// The event dataclass for `ev`; `extra` is the command's client_order_id (PlaceOrder) or
    /// nonce_below (CancelAll), which the events repeat as given.
    #[allow(clippy::too_many_arguments)]
    fn event<'py>(&mut self, py: Python<'py>, c: &Config, seq: &Bound<'py, PyAny>, cmd_hash: Option<&Bound<'py, PyAny>>, extra: Option<&Bound<'py, PyAny>>, command: Option<&Bound<'py, PyAny>>, ev: Ev) -> PyResult<Bound<'py, PyAny>> {
        let u = |v: &U256| crate::pylong::int_of(py, v);
        let code = |k: Code| c.codes[k as usize].bind(py).clone();
        let none = || py.None().into_bound(py);
        match ev {
            Ev::Accepted { trader, market, side, tif, .. } => {
                // Price, amount, nonce and expiry are the command's own: its int objects.
                let (cs, command) = (&c.cmd_slots[0], command.expect("PlaceOrder"));
                const PRICE: usize = field_pos(COMMAND_FIELDS[0], "price");
                const AMOUNT: usize = field_pos(COMMAND_FIELDS[0], "amount");
                const NONCE: usize = field_pos(COMMAND_FIELDS[0], "nonce");
                const EXPIRY: usize = field_pos(COMMAND_FIELDS[0], "expiry");
                let g = |i: usize| cs.get(command, i);
                return c.ev_slots[0].build(py, [seq.clone(), cmd_hash.expect("hash").clone(), self.pystr(py, trader), self.pystr(py, market), c.sides[side as usize].bind(py).clone(), g(PRICE)?, g(AMOUNT)?, c.tifs[tif as usize].bind(py).clone(), g(NONCE)?, g(EXPIRY)?, extra.expect("client_order_id").clone()]);
            }
            Ev::Rejected { trader, market, code: k, msg } => {
                return c.ev_slots[1].build(py, [seq.clone(), cmd_hash.expect("hash").clone(), self.pystr(py, trader), self.pystr(py, market), code(k), PyString::new(py, &msg).into_any()]);
            }
            Ev::Duplicate { trader } => {
                return c.ev_slots[2].build(py, [seq.clone(), cmd_hash.expect("hash").clone(), self.pystr(py, trader)]);
            }
            Ev::Fill(f) => {
                let FillEv { fill_index, market, maker_hash, maker_trader, taker_hash, taker_trader, taker_side, price, amount, quote, maker_fee, taker_fee, maker_left, taker_left } = *f;
                return c.ev_slots[3].build(py, [
                    seq.clone(),
                    fill_index.into_bound_py_any(py)?,
                    self.pystr(py, market),
                    PyBytes::new(py, &maker_hash).into_any(),
                    self.pystr(py, maker_trader),
                    Self::hash_obj(py, cmd_hash, taker_hash),
                    self.pystr(py, taker_trader),
                    c.sides[taker_side as usize].bind(py).clone(),
                    u(&price)?,
                    u(&amount)?,
                    u(&quote)?,
                    u(&maker_fee)?,
                    u(&taker_fee)?,
                    u(&maker_left)?,
                    u(&taker_left)?,
                ]);
            }
            Ev::Cancelled { hash, trader, market, reason, remaining } => {
                return c.ev_slots[4].build(py, [seq.clone(), Self::hash_obj(py, cmd_hash, hash), self.pystr(py, trader), self.pystr(py, market), c.reasons[reason as usize].bind(py).clone(), u(&remaining)?]);
            }
            Ev::CancelRejected { trader } => {
                return c.ev_slots[5].build(py, [seq.clone(), cmd_hash.expect("hash").clone(), self.pystr(py, trader), code(Code::OrderNotFound)]);
            }
            Ev::CancelAllApplied { trader, market, nonce_below, cancelled } => {
                let _ = nonce_below; // the command's own int object is handed back instead
                let m = match market {
                    Some(m) => self.pystr(py, m),
                    None => none(),
                };
                return c.ev_slots[6].build(py, [seq.clone(), self.pystr(py, trader), m, extra.expect("nonce_below").clone(), cancelled.into_bound_py_any(py)?]);
            }
            Ev::Balance { trader, token, total, locked } => {
                return c.ev_slots[7].build(py, [seq.clone(), self.pystr(py, trader), self.pystr(py, token), u(&total)?, u(&locked)?]);
            }
            Ev::WReserved { wid, trader, token, amount } => {
                return c.ev_slots[8].build(py, [seq.clone(), PyString::new(py, &wid).into_any(), self.pystr(py, trader), self.pystr(py, token), u(&amount)?]);
            }
            Ev::WReleased { wid, trader, token, amount } => {
                return c.ev_slots[9].build(py, [seq.clone(), PyString::new(py, &wid).into_any(), self.pystr(py, trader), self.pystr(py, token), u(&amount)?]);
            }
            Ev::Frozen { trader } => {
                return c.ev_slots[10].build(py, [seq.clone(), self.pystr(py, trader)]);
            }
            Ev::MarketAdded { market } => {
                return c.ev_slots[11].build(py, [seq.clone(), self.pystr(py, market)]);
            }
            Ev::MarketState { market, old, new, reason } => {
                return c.ev_slots[12].build(py, [seq.clone(), self.pystr(py, market), c.states[old as usize].bind(py).clone(), c.states[new as usize].bind(py).clone(), PyString::new(py, reason).into_any()]);
            }
            Ev::Risk { market, kind, msg, reference, price } => {
                return c.ev_slots[13].build(py, [seq.clone(), self.pystr(py, market), PyString::new(py, kind).into_any(), PyString::new(py, &msg).into_any(), u(&reference)?, u(&price)?]);
            }
            Ev::CmdRejected { command: name, code: k, msg } => {
                return c.ev_slots[14].build(py, [seq.clone(), PyString::new(py, name).into_any(), code(k), PyString::new(py, &msg).into_any()]);
            }
            Ev::FillReverted(f) => {
                let RevertEv { fill_seq, fill_index, market, maker_hash, maker_trader, taker_hash, taker_trader, amount, maker_left, taker_left } = *f;
                let opt = |v: Option<U256>| -> PyResult<Bound<'py, PyAny>> { v.map_or_else(|| Ok(none()), |v| u(&v)) };
                return c.ev_slots[15].build(py, [
                    seq.clone(),
                    fill_seq.into_bound_py_any(py)?,
                    fill_index.into_bound_py_any(py)?,
                    self.pystr(py, market),
                    PyBytes::new(py, &maker_hash).into_any(),
                    self.pystr(py, maker_trader),
                    PyBytes::new(py, &taker_hash).into_any(),
                    self.pystr(py, taker_trader),
                    u(&amount)?,
                    opt(maker_left)?,
                    opt(taker_left)?,
                ]);
            }
            Ev::CancelScheduled { trader, time, nonce } => {
                return c.ev_slots[16].build(py, [seq.clone(), self.pystr(py, trader), time.into_bound_py_any(py)?, nonce.into_bound_py_any(py)?]);
            }
        }
    }
}

fn side_of(ob: &Bound<'_, PyAny>) -> PyResult<Side> {
    match ob.extract::<u8>()? {
        0 => Ok(Side::Buy),
        1 => Ok(Side::Sell),
        _ => Err(PyValueError::new_err("bad side")),
    }
}

fn state_of(ob: &Bound<'_, PyAny>) -> PyResult<MState> {
    let s = ob.cast::<PyString>().map_err(|_| PyTypeError::new_err("market state must be a str"))?;
    MState::from_name(s.to_str()?).ok_or_else(|| PyValueError::new_err("unknown market state"))
}

fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".into()
    }
}

fn side_arg(side: &Bound<'_, PyAny>) -> PyResult<Side> {
    side_of(side)
}

#[pymethods]
impl Core {
    #[new]
    #[pyo3(signature = (fee_recipient = "0x000000000000000000000000000000000000Fee5", *_args, **_kwargs))]
    fn new(fee_recipient: &str, _args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, pyo3::types::PyDict>>) -> Self {
        Core { e: Engine::new(fee_recipient), strs: Vec::new(), poisoned: None, scratch: Vec::with_capacity(512), by_ptr: Default::default(), evs: Vec::with_capacity(16) }
    }

    /// Apply one command; its events in order.
    fn apply<'py>(&mut self, py: Python<'py>, command: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyList>> {
        let c = cfg(py)?;
        Ok(self.apply_one(py, c, command, None)?.0)
    }

    /// Apply one command; (its events, the engine port's SUBMITTED answer: the command's seq as
    /// a little-endian u64, then the events' encoding, `codec.encode_events`'s bytes). The
    /// encoding is written by the core from its own values, or, for the rare event the core's
    /// encoder declines (a negative integer), by `codec.encode_events` from the objects.
    fn apply_answer<'py>(&mut self, py: Python<'py>, command: &Bound<'py, PyAny>) -> PyResult<(Bound<'py, PyList>, Bound<'py, PyAny>)> {
        let c = cfg(py)?;
        let mut buf = std::mem::take(&mut self.scratch);
        buf.clear();
        let (out, ok) = self.apply_one(py, c, command, Some(&mut buf))?;
        // The answer's seq is a u64 on the wire (the journal's records hold no larger one).
        let seq = u64::try_from(self.e.last_seq).map_err(|_| PyValueError::new_err("seq beyond 2**64"));
        let answer = match seq.map(|seq| (ok, seq)) {
            Ok((true, seq)) => {
                let mut answer = Vec::with_capacity(8 + buf.len());
                answer.extend_from_slice(&seq.to_le_bytes());
                answer.extend_from_slice(&buf);
                Ok(PyBytes::new(py, &answer).into_any())
            }
            Ok((false, seq)) => {
                // codec imports the module that configures this one: looked up when needed.
                let answer = PyByteArray::new(py, &seq.to_le_bytes());
                py.import(intern!(py, "backend.matching.codec"))
                    .and_then(|codec| codec.getattr(intern!(py, "encode_events")))
                    .and_then(|encode| encode.call1((&out, &answer)))
                    .map(|_| answer.into_any())
            }
            Err(e) => Err(e),
        };
        self.scratch = buf;
        Ok((out, answer?))
    }

    /// Apply commands in order; one list of events per command.
    fn apply_batch<'py>(&mut self, py: Python<'py>, commands: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyList>> {
        let c = cfg(py)?;
        let all = PyList::empty(py);
        for command in commands.try_iter()? {
            all.append(self.apply_one(py, c, &command?, None)?.0)?;
        }
        Ok(all)
    }

    /// Replay journal records (`records.encode_record` payloads) from `payloads[start]` on,
    /// the first of them carrying `seq`, without building commands or events: for records
    /// whose events no consumer needs any more. Takes the packed PlaceOrder / CancelOrder
    /// layouts; stops at the first record of another layout, a damaged one or one whose seq
    /// is not the next (the caller decodes that one in Python, which reports damage as the
    /// decoder does). Returns (index of the first record not applied, largest `now` seen).
    fn apply_records(&mut self, py: Python<'_>, payloads: &Bound<'_, PyList>, start: usize, seq: i128) -> PyResult<(usize, i128)> {
        self.check_usable()?;
        let mut events: Vec<Ev> = Vec::with_capacity(8);
        let mut max_now: i128 = 0;
        let mut expected = seq;
        let n = payloads.len();
        let mut i = start;
        while i < n {
            let item = payloads.get_item(i)?;
            let Ok(b) = item.cast::<PyBytes>() else { break };
            let Some((cmd_seq, now, cmd)) = record::packed(b.as_bytes(), &mut self.e.syms) else { break };
            if cmd_seq != expected {
                break;
            }
            events.clear();
            let result = catch_unwind(AssertUnwindSafe(|| self.e.apply(cmd_seq, &cmd, &mut events)));
            match result {
                Ok(Ok(())) => {}
                Ok(Err(Fault(msg))) => {
                    if !msg.starts_with("sequence number must increase") {
                        self.poisoned = Some(msg.clone());
                    }
                    return Err(self.invariant(py, msg));
                }
                Err(panic) => {
                    let msg = panic_message(&panic);
                    self.poisoned = Some(format!("panic: {msg}"));
                    return Err(PyRuntimeError::new_err(format!("engine core panicked: {msg}")));
                }
            }
            max_now = max_now.max(now);
            expected += 1;
            i += 1;
        }
        Ok((i, max_now))
    }

    #[getter]
    fn last_seq(&self) -> i128 {
        self.e.last_seq
    }

    #[setter]
    fn set_last_seq(&mut self, v: i128) {
        self.e.last_seq = v;
    }

    #[getter]
    fn fee_recipient(&self) -> String {
        self.e.syms.s(self.e.fee_recipient).to_string()
    }

    #[getter]
    fn poisoned(&self) -> Option<String> {
        self.poisoned.clone()
    }

    /// Raise InvariantError if any must-hold rule is broken.
    fn validate_invariants(&self, py: Python<'_>) -> PyResult<()> {
        self.check_usable()?;
        self.e.check().map_err(|m| self.invariant(py, m))
    }

    /// The canonical snapshot body (`last_seq` is written as 0 when `for_hash`).
    #[pyo3(signature = (for_hash = false))]
    fn canonical<'py>(&self, py: Python<'py>, for_hash: bool) -> PyResult<Bound<'py, PyBytes>> {
        self.check_usable()?;
        let body = self.e.canonical(if for_hash { 0 } else { self.e.last_seq });
        Ok(PyBytes::new(py, body.as_bytes()))
    }

    /// A copy of the whole state as it is now, to encode as a snapshot off the engine's
    /// thread: copying stops the engine for a fraction of the time encoding would.
    fn freeze(&self) -> PyResult<FrozenState> {
        self.check_usable()?;
        Ok(FrozenState { e: self.e.clone() })
    }

    /// Replace the whole state by a snapshot's (ValueError if it is not a valid one).
    fn load_snapshot(&mut self, data: &[u8]) -> PyResult<()> {
        let e = catch_unwind(|| snap::load(data)).map_err(|p| PyValueError::new_err(format!("snapshot refused: {}", panic_message(&p))))?;
        self.e = e.map_err(|m| PyValueError::new_err(format!("snapshot refused: {m}")))?;
        self.strs.clear();
        self.by_ptr.clear(); // the new state numbers its symbols afresh
        self.poisoned = None;
        Ok(())
    }

    // ------------------------------------------------------------ the runtime's read view

    fn market_ids(&self) -> Vec<String> {
        self.e.markets.iter().map(|m| self.e.syms.s(m.spec.market_id).to_string()).collect()
    }

    fn has_market(&self, market_id: &str) -> bool {
        self.e.syms.find(market_id).is_some_and(|k| self.e.market_index.contains_key(&k))
    }

    /// Market state name, or None if the market is not listed.
    fn market_state(&self, market_id: &str) -> Option<&'static str> {
        let k = self.e.syms.find(market_id)?;
        let mi = *self.e.market_index.get(&k)?;
        Some(self.e.markets[mi as usize].state.name())
    }

    /// Aggregated (price, amount) levels of one side, best first.
    #[pyo3(signature = (market_id, side, limit = None))]
    fn depth<'py>(&self, py: Python<'py>, market_id: &str, side: &Bound<'py, PyAny>, limit: Option<usize>) -> PyResult<Vec<(Bound<'py, PyAny>, Bound<'py, PyAny>)>> {
        let side = side_arg(side)?;
        let Some(m) = self.market(market_id) else { return Ok(Vec::new()) };
        m.side(side).values().take(limit.unwrap_or(usize::MAX)).map(|l| Ok((crate::pylong::int_of(py, &l.price)?, crate::pylong::int_of(py, &l.total)?))).collect()
    }

    /// Total resting at one price (0 if no level).
    fn level_total<'py>(&self, py: Python<'py>, market_id: &str, side: &Bound<'py, PyAny>, price: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let side = side_arg(side)?;
        let zero = U256::ZERO;
        let Some(m) = self.market(market_id) else { return crate::pylong::int_of(py, &zero) };
        let PInt::Val(p) = pint(price)? else { return crate::pylong::int_of(py, &zero) };
        let total = m.side(side).get(&level_key(side, p)).map_or(zero, |l| l.total);
        crate::pylong::int_of(py, &total)
    }

    /// (levels, open orders, best price or 0) of one side.
    fn side_stats<'py>(&self, py: Python<'py>, market_id: &str, side: &Bound<'py, PyAny>) -> PyResult<(usize, u64, Bound<'py, PyAny>)> {
        let side = side_arg(side)?;
        let zero = U256::ZERO;
        let Some(m) = self.market(market_id) else { return Ok((0, 0, crate::pylong::int_of(py, &zero)?)) };
        let levels = m.side(side);
        let orders: u64 = levels.values().map(|l| l.live as u64).sum();
        Ok((levels.len(), orders, crate::pylong::int_of(py, &m.best(side).unwrap_or(zero))?))
    }

    /// (side, price) of the trader's open order, None if it is not open.
    fn order_level<'py>(&self, py: Python<'py>, trader: &str, order_hash: &[u8]) -> PyResult<Option<(Bound<'py, PyAny>, Bound<'py, PyAny>)>> {
        let c = cfg(py)?;
        let Some(t) = self.e.syms.find(trader) else { return Ok(None) };
        let Some(r) = self.e.find_open(t, order_hash) else { return Ok(None) };
        let Some(o) = self.e.get(r) else { return Ok(None) };
        Ok(Some((c.sides[o.side as usize].bind(py).clone(), crate::pylong::int_of(py, &self.e.price(o))?)))
    }

    /// The earliest time a sweep has work (order expiries, closed ones may linger; switches).
    fn next_expiry(&self) -> Option<u64> {
        self.e.next_deadline()
    }

    fn open_order_count(&self) -> usize {
        self.e.open_orders.values().map(|m| m.len()).sum()
    }

    /// (total, locked) of one cell, (0, 0) if it does not exist.
    fn balance<'py>(&self, py: Python<'py>, trader: &str, token: &str) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        let cell = match (self.e.syms.find(trader), self.e.syms.find(token)) {
            (Some(t), Some(k)) => self.e.cell_get(t, k),
            _ => None,
        };
        let (t, l) = cell.map_or((U256::ZERO, U256::ZERO), |i| (self.e.cells[i as usize].total, self.e.cells[i as usize].locked));
        Ok((crate::pylong::int_of(py, &t)?, crate::pylong::int_of(py, &l)?))
    }

    /// Every (trader, token, total, locked), in (trader, token) order.
    fn balance_rows<'py>(&self, py: Python<'py>) -> PyResult<Vec<(String, String, Bound<'py, PyAny>, Bound<'py, PyAny>)>> {
        let s = &self.e.syms;
        let mut cells: Vec<&Cell> = self.e.cells.iter().collect();
        cells.sort_by(|a, b| (s.s(a.trader), s.s(a.token)).cmp(&(s.s(b.trader), s.s(b.token))));
        cells.into_iter().map(|x| Ok((s.s(x.trader).to_string(), s.s(x.token).to_string(), crate::pylong::int_of(py, &x.total)?, crate::pylong::int_of(py, &x.locked)?))).collect()
    }

    /// Sum of `total` per token over every account.
    fn token_totals<'py>(&self, py: Python<'py>) -> PyResult<Vec<(String, Bound<'py, PyAny>)>> {
        let mut v: Vec<(String, U256)> = self.e.supply.iter().map(|(k, s)| (self.e.syms.s(*k).to_string(), *s)).collect();
        v.sort();
        v.into_iter().map(|(k, s)| Ok((k, crate::pylong::int_of(py, &s)?))).collect()
    }

    fn is_frozen(&self, trader: &str) -> bool {
        self.e.syms.find(trader).is_some_and(|t| self.e.frozen.contains(&t))
    }

    /// A deliberate panic inside the core: the tests of the panic path use it.
    fn _panic_for_test(&mut self) -> PyResult<()> {
        let r = catch_unwind(AssertUnwindSafe(|| -> () { panic!("deliberate panic for a test") }));
        if let Err(p) = r {
            let msg = panic_message(&p);
            self.poisoned = Some(format!("panic: {msg}"));
            return Err(PyRuntimeError::new_err(format!("engine core panicked: {msg}")));
        }
        Ok(())
    }
}

impl Core {
    fn market(&self, market_id: &str) -> Option<&Market> {
        let k = self.e.syms.find(market_id)?;
        let mi = *self.e.market_index.get(&k)?;
        Some(&self.e.markets[mi as usize])
    }
}

/// The engine's state at one seq (`Core.freeze`), immutable.
#[pyclass(frozen, module = "backend._native", name = "FrozenState")]
pub struct FrozenState {
    e: Engine,
}

#[pymethods]
impl FrozenState {
    #[getter]
    fn last_seq(&self) -> i128 {
        self.e.last_seq
    }

    /// (the snapshot, `state_hash()`) from one encoding, made without holding the GIL.
    fn snapshot_and_hash<'py>(&self, py: Python<'py>) -> (Bound<'py, PyBytes>, String) {
        let (body, digest) = py.detach(|| self.e.snapshot_and_hash());
        let mut hex = String::with_capacity(64);
        for b in digest {
            let _ = write!(hex, "{b:02x}");
        }
        (PyBytes::new(py, body.as_bytes()), hex)
    }
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Core>()?;
    m.add_class::<FrozenState>()?;
    m.add_function(wrap_pyfunction!(configure, m)?)?;
    m.add_function(wrap_pyfunction!(codec::encode_events, m)?)?;
    m.add_function(wrap_pyfunction!(codec::encode_command, m)?)?;
    m.add_function(wrap_pyfunction!(codec::decode_events, m)?)?;
    m.add_function(wrap_pyfunction!(journal::frame_records, m)?)?;
    m.add_function(wrap_pyfunction!(journal::crc32_of, m)?)?;
    m.add_function(wrap_pyfunction!(journal::start_group, m)?)?;
    m.add_class::<journal::GroupWrite>()?;
    m.add_function(wrap_pyfunction!(stamp, m)?)?;
    m.add_function(wrap_pyfunction!(stamp_record, m)?)?;
    m.add_function(wrap_pyfunction!(stamp_records, m)?)?;
    m.add_function(wrap_pyfunction!(decode_packed, m)?)?;
    m.add_function(wrap_pyfunction!(sig::sig_configure, m)?)?;
    m.add_function(wrap_pyfunction!(sig::sig_check, m)?)?;
    m.add_function(wrap_pyfunction!(sig::sig_recover_only, m)?)?;
    m.add("CODE_NAMES", Code::NAMES.to_vec())?;
    m.add("SNAPSHOT_VERSION", snap::SNAPSHOT_VERSION)?;
    Ok(())
}
