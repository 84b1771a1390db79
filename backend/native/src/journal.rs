//! The journal's record framing (backend/engine/journal.py: `u32 length, u32 crc32(payload),
//! payload` per record) for a whole group in one call, and the stamping of commands with their
//! seq and time: the per-command Python work of a group commit.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyList};

/// CRC-32 (the zlib / IEEE 802.3 polynomial, reflected), slicing by 8: what `zlib.crc32` gives.
struct Crc32([[u32; 256]; 8]);

const fn tables() -> Crc32 {
    let mut t = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        t[0][i] = c;
        i += 1;
    }
    let mut i = 0;
    while i < 256 {
        let mut s = 1;
        while s < 8 {
            let prev = t[s - 1][i];
            t[s][i] = (prev >> 8) ^ t[0][(prev & 0xFF) as usize];
            s += 1;
        }
        i += 1;
    }
    Crc32(t)
}

static CRC: Crc32 = tables();

pub fn crc32(data: &[u8]) -> u32 {
    let t = &CRC.0;
    let mut c = !0u32;
    let mut chunks = data.chunks_exact(8);
    for b in &mut chunks {
        let lo = c ^ u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let hi = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
        c = t[7][(lo & 0xFF) as usize]
            ^ t[6][((lo >> 8) & 0xFF) as usize]
            ^ t[5][((lo >> 16) & 0xFF) as usize]
            ^ t[4][(lo >> 24) as usize]
            ^ t[3][(hi & 0xFF) as usize]
            ^ t[2][((hi >> 8) & 0xFF) as usize]
            ^ t[1][((hi >> 16) & 0xFF) as usize]
            ^ t[0][(hi >> 24) as usize];
    }
    for &b in chunks.remainder() {
        c = t[0][((c ^ b as u32) & 0xFF) as usize] ^ (c >> 8);
    }
    !c
}

/// The framed records of a group (each `u32 length, u32 crc32, payload`), as a bytearray the
/// journal appends its trailer to. ValueError for an empty payload, as the journal refuses it.
#[pyfunction]
pub fn frame_records<'py>(py: Python<'py>, payloads: &Bound<'py, PyList>) -> PyResult<Bound<'py, PyByteArray>> {
    let mut total = 0usize;
    let mut views: Vec<Bound<'py, PyBytes>> = Vec::with_capacity(payloads.len());
    for p in payloads.iter() {
        let b = p.cast_into::<PyBytes>().map_err(|_| PyValueError::new_err("a journal record must be bytes"))?;
        let n = b.as_bytes().len();
        if n == 0 {
            return Err(PyValueError::new_err("a journal record cannot be empty"));
        }
        if n >= 0xFFFF_FFFF {
            return Err(PyValueError::new_err("journal record too long"));
        }
        total += 8 + n;
        views.push(b);
    }
    let mut buf: Vec<u8> = Vec::with_capacity(total + 32);
    for b in &views {
        let p = b.as_bytes();
        buf.extend_from_slice(&(p.len() as u32).to_le_bytes());
        buf.extend_from_slice(&crc32(p).to_le_bytes());
        buf.extend_from_slice(p);
    }
    Ok(PyByteArray::new(py, &buf))
}

/// `crc32(data)` as `zlib.crc32` (tests hold them equal).
#[pyfunction]
pub fn crc32_of(data: &[u8]) -> u32 {
    crc32(data)
}

/// Write a group — its framed records and the trailer `u32 0xFFFFFFFF, u32 count, u32 record
/// bytes, u64 last_seq, u32 crc32(the four fields)` — to `fd` and fdatasync it, with the GIL
/// released for the CRCs, the write and the sync (the engine applies the group meanwhile).
/// Returns the bytes written; OSError if the write or the sync fails.
#[pyfunction]
pub fn write_group(py: Python<'_>, fd: i32, payloads: &Bound<'_, PyList>, last_seq: u64) -> PyResult<usize> {
    let mut buf: Vec<u8> = Vec::new();
    let mut spans: Vec<(usize, usize)> = Vec::with_capacity(payloads.len());
    for p in payloads.iter() {
        let b = p.cast_into::<PyBytes>().map_err(|_| PyValueError::new_err("a journal record must be bytes"))?;
        let p = b.as_bytes();
        if p.is_empty() {
            return Err(PyValueError::new_err("a journal record cannot be empty"));
        }
        if p.len() >= 0xFFFF_FFFF {
            return Err(PyValueError::new_err("journal record too long"));
        }
        buf.extend_from_slice(&(p.len() as u32).to_le_bytes());
        buf.extend_from_slice(&[0; 4]);
        spans.push((buf.len(), p.len()));
        buf.extend_from_slice(p);
    }
    // The trailer holds the group's record bytes as a u32: a larger group could not be read back.
    if buf.len() >= 0xFFFF_FFFF - 32 {
        return Err(PyValueError::new_err("journal group too long"));
    }
    let count = spans.len() as u32;
    py.detach(move || -> PyResult<usize> {
        for &(start, n) in &spans {
            let c = crc32(&buf[start..start + n]).to_le_bytes();
            buf[start - 4..start].copy_from_slice(&c);
        }
        let nbytes = buf.len() as u32;
        let mut fields = Vec::with_capacity(24);
        fields.extend_from_slice(&0xFFFF_FFFFu32.to_le_bytes());
        fields.extend_from_slice(&count.to_le_bytes());
        fields.extend_from_slice(&nbytes.to_le_bytes());
        fields.extend_from_slice(&last_seq.to_le_bytes());
        let c = crc32(&fields);
        buf.extend_from_slice(&fields);
        buf.extend_from_slice(&c.to_le_bytes());
        let mut done = 0;
        while done < buf.len() {
            // SAFETY: a plain write(2) of our own buffer to the caller's descriptor.
            let n = unsafe { libc_write(fd, buf[done..].as_ptr(), buf.len() - done) };
            if n < 0 {
                let err = std::io::Error::last_os_error();
                if err.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(err.into());
            }
            if n == 0 {
                // Not seen on a regular file, but looping on it would hang the journal thread.
                return Err(std::io::Error::new(std::io::ErrorKind::WriteZero, "journal write made no progress").into());
            }
            done += n as usize;
        }
        // SAFETY: fdatasync(2) on the caller's descriptor.
        if unsafe { libc_fdatasync(fd) } != 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        Ok(buf.len())
    })
}

unsafe extern "C" {
    #[link_name = "write"]
    fn libc_write(fd: i32, buf: *const u8, count: usize) -> isize;
    // fdatasync also persists the file size, which is all an append needs (journal.py `_sync`)
    #[cfg_attr(target_os = "linux", link_name = "fdatasync")]
    #[cfg_attr(not(target_os = "linux"), link_name = "fsync")]
    fn libc_fdatasync(fd: i32) -> i32;
}
