//! Direct access to the slots of the engine's command and event dataclasses.
//!
//! They are `@dataclass(slots=True)` classes: each field is a member descriptor at a fixed
//! offset in the instance. Reading a command's fields and building an event by writing its
//! slots skips a Python-level `__init__` and an attribute lookup per field, which was most of
//! the cost of a command at the boundary. The offsets are taken from the classes' own member
//! descriptors at `configure()`, which refuses a class whose fields are not plain slots.

use pyo3::exceptions::{PyAttributeError, PyTypeError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyType};

pub struct Slotted {
    pub cls: Py<PyType>,
    pub offsets: Vec<isize>,
    /// Built instances are left out of the cycle collector: set for the event classes, whose
    /// fields are all ints, strs, bytes, enum members or None (checked at `configure`). Such an
    /// object can be in no reference cycle, and a group's events live until the group is
    /// persisted, so every young-generation pass would walk them again for nothing.
    pub untrack: bool,
}

impl Slotted {
    /// The offsets of `names` (all of the class's dataclass fields if None), in that order.
    pub fn new(cls: &Bound<'_, PyAny>, names: Option<&[&str]>) -> PyResult<Self> {
        let cls = cls.cast::<PyType>().map_err(|_| PyTypeError::new_err("expected a class"))?.clone();
        let fields = cls.getattr("__dataclass_fields__")?;
        let fields = fields.cast::<PyDict>()?;
        let all: Vec<String> = fields.keys().iter().map(|k| k.extract::<String>()).collect::<PyResult<_>>()?;
        let wanted: Vec<String> = match names {
            Some(n) => n.iter().map(|s| s.to_string()).collect(),
            None => all,
        };
        let dict = cls.getattr("__dict__")?;
        let mut offsets = Vec::with_capacity(wanted.len());
        for name in &wanted {
            let descr = dict.get_item(name.as_str()).map_err(|_| PyAttributeError::new_err(format!("{}: no slot {name}", cls.name().map(|n| n.to_string()).unwrap_or_default())))?;
            // SAFETY: the type check makes the cast to a member descriptor valid.
            let offset = unsafe {
                if ffi::Py_TYPE(descr.as_ptr()) != &raw mut ffi::PyMemberDescr_Type {
                    return Err(PyTypeError::new_err(format!("{name} is not a slot")));
                }
                let member = (*(descr.as_ptr() as *mut ffi::PyMemberDescrObject)).d_member;
                if (*member).type_code != ffi::Py_T_OBJECT_EX {
                    return Err(PyTypeError::new_err(format!("{name} is not an object slot")));
                }
                (*member).offset
            };
            offsets.push(offset);
        }
        Ok(Slotted { cls: cls.unbind(), offsets, untrack: false })
    }

    /// Field `i` of `ob` (an instance of exactly this class), borrowed.
    #[inline]
    pub fn get<'py>(&self, ob: &Bound<'py, PyAny>, i: usize) -> PyResult<Bound<'py, PyAny>> {
        // SAFETY: the caller checked that ob's type is self.cls, whose slot i is at offsets[i].
        unsafe {
            let p = *((ob.as_ptr() as *mut u8).offset(self.offsets[i]) as *mut *mut ffi::PyObject);
            if p.is_null() {
                return Err(PyAttributeError::new_err("command field not set"));
            }
            Ok(Bound::from_borrowed_ptr(ob.py(), p))
        }
    }

    /// A new instance with its fields set to `values` (one per offset), without `__init__`.
    pub fn build<'py, const N: usize>(&self, py: Python<'py>, values: [Bound<'py, PyAny>; N]) -> PyResult<Bound<'py, PyAny>> {
        assert_eq!(N, self.offsets.len(), "event field count");
        self.fill(py, values)
    }

    /// As `build`, from a vector (one value per offset).
    pub fn build_vec<'py>(&self, py: Python<'py>, values: Vec<Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyAny>> {
        if values.len() != self.offsets.len() {
            return Err(PyTypeError::new_err("wrong number of fields"));
        }
        self.fill(py, values)
    }

    /// The instance of `build` and `build_vec`, whose callers checked there is one value per offset.
    #[inline]
    fn fill<'py>(&self, py: Python<'py>, values: impl IntoIterator<Item = Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyAny>> {
        // SAFETY: tp_alloc returns a zeroed instance (GC-tracked if the type is) with every
        // slot NULL; each slot then takes one owned reference, as __init__ would have stored.
        unsafe {
            let tp = self.cls.as_ptr() as *mut ffi::PyTypeObject;
            let alloc = (*tp).tp_alloc.unwrap_or(ffi::PyType_GenericAlloc);
            let obj = alloc(tp, 0);
            if obj.is_null() {
                return Err(PyErr::fetch(py));
            }
            for (v, off) in values.into_iter().zip(&self.offsets) {
                *((obj as *mut u8).offset(*off) as *mut *mut ffi::PyObject) = v.into_ptr();
            }
            if self.untrack && ffi::PyObject_GC_IsTracked(obj) != 0 {
                ffi::PyObject_GC_UnTrack(obj as *mut std::ffi::c_void);
            }
            Ok(Bound::from_owned_ptr(py, obj))
        }
    }
}
