//! The journal's record framing (backend/engine/journal.py: `u32 length, u32 crc32(payload),
//! payload` per record) for a whole group in one call, and the stamping of commands with their
//! seq and time: the per-command Python work of a group commit.

use std::sync::{mpsc, Arc, Condvar, Mutex};

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

/// A group's framed records (CRCs still zero) and where each payload starts, copied out of
/// the Python bytes while the GIL is held; the rest of the write needs no Python object.
struct Group {
    buf: Vec<u8>,
    spans: Vec<(usize, usize)>,
    last_seq: u64,
    fd: i32,
}

fn collect(fd: i32, payloads: &Bound<'_, PyList>, last_seq: u64) -> PyResult<Group> {
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
    Ok(Group { buf, spans, last_seq, fd })
}

/// The CRCs, the trailer, the write and the fdatasync of a collected group: bytes written.
fn write_out(g: Group) -> std::io::Result<usize> {
    let Group { mut buf, spans, last_seq, fd } = g;
    for &(start, n) in &spans {
        let c = crc32(&buf[start..start + n]).to_le_bytes();
        buf[start - 4..start].copy_from_slice(&c);
    }
    let nbytes = buf.len() as u32;
    let mut fields = Vec::with_capacity(24);
    fields.extend_from_slice(&0xFFFF_FFFFu32.to_le_bytes());
    fields.extend_from_slice(&(spans.len() as u32).to_le_bytes());
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
            return Err(err);
        }
        if n == 0 {
            // Not seen on a regular file, but looping on it would hang the writer thread.
            return Err(std::io::Error::new(std::io::ErrorKind::WriteZero, "journal write made no progress"));
        }
        done += n as usize;
    }
    // SAFETY: fdatasync(2) on the caller's descriptor.
    if unsafe { libc_fdatasync(fd) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(buf.len())
}

// ------------------------------------------------------------------ the writer thread

/// The write's result and how long the write and the sync took, once done.
type Outcome = Arc<(Mutex<Option<(std::io::Result<usize>, f64)>>, Condvar)>;
type Job = (Group, Outcome, Option<i32>);

/// One thread per process that writes and syncs groups in the order they are started. It
/// needs no GIL, so a group's write begins the moment `start_group` hands it over; a Python
/// thread would first wait for the GIL, which the applying thread gives up only every switch
/// interval (5 ms), after the group is applied: the write and the apply would not overlap.
static WRITER: Mutex<Option<(u32, mpsc::Sender<Job>)>> = Mutex::new(None);

fn writer() -> mpsc::Sender<Job> {
    let mut w = WRITER.lock().unwrap_or_else(|e| e.into_inner());
    let pid = std::process::id();
    // A forked child inherits the sender but not the thread: it starts its own.
    if let Some((owner, tx)) = w.as_ref() {
        if *owner == pid {
            return tx.clone();
        }
    }
    let (tx, rx) = mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("journal-writer".into())
        .spawn(move || {
            for (g, out, notify) in rx {
                let t0 = std::time::Instant::now();
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| write_out(g)))
                    .unwrap_or_else(|_| Err(std::io::Error::other("journal writer panicked")));
                let seconds = t0.elapsed().as_secs_f64();
                let (lock, cv) = &*out;
                *lock.lock().unwrap_or_else(|e| e.into_inner()) = Some((r, seconds));
                cv.notify_all();
                if let Some(fd) = notify {
                    // One byte wakes the waiter's event loop; a full pipe already holds a
                    // wake-up, and any other failure leaves `wait()` as the way to learn.
                    // SAFETY: a one-byte write(2) of our own buffer to the caller's descriptor.
                    let _ = unsafe { libc_write(fd, [1u8].as_ptr(), 1) };
                }
            }
        })
        .expect("spawn the journal writer thread");
    *w = Some((pid, tx.clone()));
    tx
}

/// A group handed to the writer thread; `wait()` returns once it is written and synced.
#[pyclass(module = "backend._native", name = "GroupWrite")]
pub struct GroupWrite {
    out: Outcome,
    taken: Option<PyResult<usize>>,
    seconds: Option<f64>,
}

#[pymethods]
impl GroupWrite {
    /// Bytes written, once the group's fdatasync has returned (the GIL released meanwhile);
    /// OSError if the write or the sync failed. Later calls give the same answer.
    fn wait(&mut self, py: Python<'_>) -> PyResult<usize> {
        if self.taken.is_none() {
            let out = self.out.clone();
            let r = py.detach(move || {
                let (lock, cv) = &*out;
                let mut g = lock.lock().unwrap_or_else(|e| e.into_inner());
                while g.is_none() {
                    g = cv.wait(g).unwrap_or_else(|e| e.into_inner());
                }
                g.take().expect("outcome")
            });
            self.taken = Some(r.0.map_err(PyErr::from));
            self.seconds = Some(r.1);
        }
        match self.taken.as_ref().expect("taken") {
            Ok(n) => Ok(*n),
            Err(e) => Err(e.clone_ref(py)),
        }
    }

    /// Seconds the writer thread spent on the write and the sync, once `wait()` has returned.
    #[getter]
    fn seconds(&self) -> Option<f64> {
        self.seconds
    }

    /// True once the write and sync have finished (well or not).
    fn done(&self) -> bool {
        self.taken.is_some() || self.out.0.lock().map(|g| g.is_some()).unwrap_or(true)
    }
}

/// Start writing a group — its framed records and the trailer `u32 0xFFFFFFFF, u32 count,
/// u32 record bytes, u64 last_seq, u32 crc32(the four fields)` — to `fd` and fdatasyncing it,
/// on the writer thread, and return at once: the payloads are copied first, so the caller may
/// apply the group while it is written. Once it is done (well or not), one byte is written to
/// `notify_fd` if given (a non-blocking pipe an event loop watches). ValueError for a record
/// or group the format cannot hold; the write's or the sync's OSError comes from `wait()`.
#[pyfunction]
#[pyo3(signature = (fd, payloads, last_seq, notify_fd=None))]
pub fn start_group(fd: i32, payloads: &Bound<'_, PyList>, last_seq: u64, notify_fd: Option<i32>) -> PyResult<GroupWrite> {
    let g = collect(fd, payloads, last_seq)?;
    let out: Outcome = Arc::new((Mutex::new(None), Condvar::new()));
    if writer().send((g, out.clone(), notify_fd)).is_err() {
        return Err(pyo3::exceptions::PyRuntimeError::new_err("the journal writer thread is gone"));
    }
    Ok(GroupWrite { out, taken: None, seconds: None })
}

unsafe extern "C" {
    #[link_name = "write"]
    fn libc_write(fd: i32, buf: *const u8, count: usize) -> isize;
    // fdatasync also persists the file size, which is all an append needs (journal.py `_sync`)
    #[cfg_attr(target_os = "linux", link_name = "fdatasync")]
    #[cfg_attr(not(target_os = "linux"), link_name = "fsync")]
    fn libc_fdatasync(fd: i32) -> i32;
}
