// The Python version cfgs (Py_3_13, …) the binding's fast integer paths depend on.
fn main() {
    pyo3_build_config::use_pyo3_cfgs();
}
