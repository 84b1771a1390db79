//! Python ints read and built from their digits (CPython 3.11's layout), for the engine's
//! boundary: every command carries several ints and every event builds a few, and CPython's
//! generic converters (`PyLong_AsUnsignedLongLong`, `_PyLong_FromByteArray`) go byte by byte
//! through a buffer, which was a tenth of a command's instructions.
//!
//! Before 3.12 an int is `PyVarObject` followed by `ob_digit[|ob_size|]`: 30-bit digits, least
//! significant first, the sign in `ob_size` (0 for zero). Other versions take the generic path.

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyInt};
use ruint::aliases::U256;

#[cfg(not(Py_3_12))]
const SHIFT: u32 = 30;
#[cfg(not(Py_3_12))]
const MASK: u64 = (1 << SHIFT) - 1;
/// Digits of a 256-bit value (9 × 30 = 270 bits).
#[cfg(not(Py_3_12))]
const MAX_DIGITS: usize = 9;

#[cfg(not(Py_3_12))]
unsafe extern "C" {
    /// A new int of `size` digits, uninitialised (libpython exports it; `longobject.c`).
    fn _PyLong_New(size: ffi::Py_ssize_t) -> *mut ffi::PyObject;
}

/// The digits of `ob` (an exact or subclassed int) and its signed digit count.
///
/// SAFETY: `ob` must be an int object (its type checked by the caller).
#[cfg(not(Py_3_12))]
#[inline]
unsafe fn digits<'a>(ob: *mut ffi::PyObject) -> (isize, &'a [u32]) {
    unsafe {
        let size = (*(ob as *mut ffi::PyVarObject)).ob_size;
        let first = (ob as *mut u8).add(std::mem::size_of::<ffi::PyVarObject>()) as *const u32;
        (size, std::slice::from_raw_parts(first, size.unsigned_abs()))
    }
}

/// What an int holds, for `pint`: Err(true) if negative, Err(false) if wider than 256 bits.
/// None when this build reads ints the generic way.
#[inline]
pub fn read_u256(ob: &Bound<'_, PyAny>) -> Option<Result<U256, bool>> {
    #[cfg(not(Py_3_12))]
    // SAFETY: the caller checked that ob is an int.
    unsafe {
        let (size, ds) = digits(ob.as_ptr());
        if size < 0 {
            return Some(Err(true));
        }
        if ds.len() <= 2 {
            let lo = ds.first().copied().unwrap_or(0) as u64;
            let hi = ds.get(1).copied().unwrap_or(0) as u64;
            return Some(Ok(U256::from(lo | hi << SHIFT)));
        }
        if ds.len() > MAX_DIGITS {
            return Some(Err(false));
        }
        let mut limbs = [0u64; 5]; // 270 bits fit; the fifth limb holds what overflows 256
        let mut bit = 0usize;
        for &d in ds {
            let (i, off) = (bit / 64, bit % 64);
            limbs[i] |= (d as u64) << off;
            if off > 64 - SHIFT as usize {
                limbs[i + 1] |= (d as u64) >> (64 - off);
            }
            bit += SHIFT as usize;
        }
        if limbs[4] != 0 {
            return Some(Err(false));
        }
        return Some(Ok(U256::from_limbs([limbs[0], limbs[1], limbs[2], limbs[3]])));
    }
    #[allow(unreachable_code)]
    {
        let _ = ob;
        None
    }
}

/// An int of at most two digits (below 2**60 in magnitude) as i64; None otherwise.
#[inline]
pub fn read_small_i64(ob: &Bound<'_, PyAny>) -> Option<i64> {
    #[cfg(not(Py_3_12))]
    // SAFETY: the caller checked that ob is an exact int.
    unsafe {
        let (size, ds) = digits(ob.as_ptr());
        if ds.len() > 2 {
            return None;
        }
        let lo = ds.first().copied().unwrap_or(0) as i64;
        let hi = ds.get(1).copied().unwrap_or(0) as i64;
        let v = lo | hi << SHIFT;
        return Some(if size < 0 { -v } else { v });
    }
    #[allow(unreachable_code)]
    {
        let _ = ob;
        None
    }
}

/// A new int equal to `v`; None when this build builds ints the generic way.
#[inline]
pub fn new_u256<'py>(py: Python<'py>, v: &U256) -> Option<PyResult<Bound<'py, PyAny>>> {
    #[cfg(not(Py_3_12))]
    {
        let bits = v.bit_len();
        if bits <= 30 {
            // One digit or zero: CPython's own constructor keeps its small-int cache.
            // SAFETY: returns a new reference or NULL with an error set.
            return Some(unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyLong_FromLong(v.as_limbs()[0] as std::ffi::c_long)) });
        }
        let n = bits.div_ceil(SHIFT as usize);
        let limbs = v.as_limbs();
        // SAFETY: _PyLong_New returns an int of n digits (ob_size = n) or NULL with an error;
        // every one of its n digits is written before the object is used.
        unsafe {
            let ob = _PyLong_New(n as ffi::Py_ssize_t);
            if ob.is_null() {
                return Some(Err(PyErr::fetch(py)));
            }
            let first = (ob as *mut u8).add(std::mem::size_of::<ffi::PyVarObject>()) as *mut u32;
            if bits <= 128 {
                // Most amounts and balances: shifted out of one u128, no limb arithmetic.
                let mut rest = limbs[0] as u128 | (limbs[1] as u128) << 64;
                for k in 0..n {
                    *first.add(k) = (rest as u64 & MASK) as u32;
                    rest >>= SHIFT;
                }
            } else {
                let mut bit = 0usize;
                for k in 0..n {
                    let (i, off) = (bit / 64, bit % 64);
                    let mut d = limbs[i] >> off;
                    if off > 64 - SHIFT as usize && i + 1 < 4 {
                        d |= limbs[i + 1] << (64 - off);
                    }
                    *first.add(k) = (d & MASK) as u32;
                    bit += SHIFT as usize;
                }
            }
            return Some(Ok(Bound::from_owned_ptr(py, ob)));
        }
    }
    #[allow(unreachable_code)]
    {
        let _ = (py, v);
        None
    }
}

/// An int equal to `v`: built from its digits where this build can, else `int.from_bytes`.
pub fn int_of<'py>(py: Python<'py>, v: &U256) -> PyResult<Bound<'py, PyAny>> {
    if let Some(ob) = new_u256(py, v) {
        return ob;
    }
    let be = PyBytes::new(py, &v.to_be_bytes::<32>());
    py.get_type::<PyInt>().call_method1("from_bytes", (be, "big"))
}
