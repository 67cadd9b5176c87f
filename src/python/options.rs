//! Options structs across the boundary: one conversion for every [`Schema`].
//!
//! An op's options arrive as one dict (`options=`); [`Opts`] converts it with
//! [`options::from_values`], where every option is type- and range-checked. Python reads each
//! struct's names, kinds, defaults and docs through `option_schema` and builds its
//! signatures and docstrings from them, so nothing about an option is written on the Python
//! side.

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyString};
use pyo3::IntoPyObjectExt;

use crate::data::decode::DecodeOptions;
use crate::data::LoaderOptions;
use crate::decoder::{HeadConfig, MlDecoderConfig};
use crate::error::Error;
use crate::loss::{AslOptions, PartialOptions, SingleLabelOptions};
use crate::metrics::ApOptions;
use crate::options::{self, Kind, Schema, Value};

/// Options of type `T` given from Python as a dict of name to value.
pub struct Opts<T>(pub T);

fn to_value(name: &str, ob: &Bound<'_, PyAny>) -> PyResult<Value> {
    let out_of_range = |_| Error::value(format!("{name} is out of range, got {ob}"));
    Ok(if let Ok(b) = ob.downcast::<PyBool>() {
        Value::Bool(b.is_true())
    } else if ob.is_instance_of::<PyInt>() {
        match ob.extract::<i64>() {
            Ok(i) => Value::Int(i),
            Err(_) => Value::UInt(ob.extract::<u64>().map_err(out_of_range)?),
        }
    } else if ob.is_instance_of::<PyFloat>() {
        Value::Float(ob.extract::<f64>()?)
    } else if let Ok(s) = ob.downcast::<PyString>() {
        Value::Str(s.to_str()?.to_string())
    } else if let Ok(i) = ob.extract::<i64>() {
        // NumPy and torch integers (`__index__`).
        Value::Int(i)
    } else if ob.hasattr("__float__")? {
        Value::Float(ob.extract::<f64>()?)
    } else {
        let ty = ob.get_type().name()?;
        return Err(Error::Type(format!("{name} must be a number, bool or str, got {ty}")).into());
    })
}

fn to_py(py: Python<'_>, value: Value) -> PyResult<PyObject> {
    match value {
        Value::Bool(b) => b.into_py_any(py),
        Value::Int(i) => i.into_py_any(py),
        Value::UInt(i) => i.into_py_any(py),
        Value::Float(f) => f.into_py_any(py),
        Value::Str(s) => s.into_py_any(py),
    }
}

impl<'py, T: Schema> FromPyObject<'py> for Opts<T> {
    fn extract_bound(ob: &Bound<'py, PyAny>) -> PyResult<Self> {
        let dict = ob.downcast::<PyDict>()?;
        let mut given = Vec::with_capacity(dict.len());
        for (k, v) in dict.iter() {
            let name: String = k.extract()?;
            let value = to_value(&name, &v)?;
            given.push((name, value));
        }
        Ok(Opts(options::from_values(given)?))
    }
}

/// `T`'s options as a dict of name to value.
pub fn values<T: Schema>(py: Python<'_>, opts: &T) -> PyResult<PyObject> {
    let d = PyDict::new(py);
    for f in T::FIELDS {
        if let Some(v) = opts.get(f.name) {
            d.set_item(f.name, to_py(py, v)?)?;
        }
    }
    Ok(d.into_any().unbind())
}

/// `T`'s schema: one dict per option (name, kind, default, doc, choices).
fn describe<T: Schema>(py: Python<'_>) -> PyResult<PyObject> {
    let defaults = T::default();
    let mut out = Vec::with_capacity(T::FIELDS.len());
    for f in T::FIELDS {
        let d = PyDict::new(py);
        let (kind, choices): (&str, Option<Vec<&str>>) = match f.kind {
            Kind::Bool => ("bool", None),
            Kind::Int => ("int", None),
            Kind::Float => ("float", None),
            Kind::Choice(names) => ("str", Some(names.to_vec())),
        };
        d.set_item("name", f.name)?;
        d.set_item("kind", kind)?;
        d.set_item("choices", choices)?;
        d.set_item("doc", f.doc.trim())?;
        d.set_item(
            "default",
            defaults.get(f.name).map(|v| to_py(py, v)).transpose()?,
        )?;
        out.push(d);
    }
    out.into_py_any(py)
}

fn resolve<T: Schema>(ob: &Bound<'_, PyAny>) -> PyResult<PyObject> {
    let Opts(opts) = ob.extract::<Opts<T>>()?;
    values(ob.py(), &opts)
}

type Describe = fn(Python<'_>) -> PyResult<PyObject>;
type Resolve = fn(&Bound<'_, PyAny>) -> PyResult<PyObject>;

/// Every options struct Python sees, by the name of the op that takes it.
static SCHEMAS: &[(&str, Describe, Resolve)] = &[
    (
        "asymmetric_loss",
        describe::<AslOptions>,
        resolve::<AslOptions>,
    ),
    (
        "asymmetric_loss_single_label",
        describe::<SingleLabelOptions>,
        resolve::<SingleLabelOptions>,
    ),
    (
        "partial_asymmetric_loss",
        describe::<PartialOptions>,
        resolve::<PartialOptions>,
    ),
    (
        "average_precision",
        describe::<ApOptions>,
        resolve::<ApOptions>,
    ),
    (
        "loader",
        describe::<LoaderOptions>,
        resolve::<LoaderOptions>,
    ),
    (
        "decode",
        describe::<DecodeOptions>,
        resolve::<DecodeOptions>,
    ),
    (
        "query2label_head",
        describe::<HeadConfig>,
        resolve::<HeadConfig>,
    ),
    (
        "ml_decoder_head",
        describe::<MlDecoderConfig>,
        resolve::<MlDecoderConfig>,
    ),
];

fn entry(op: &str) -> PyResult<&'static (&'static str, Describe, Resolve)> {
    SCHEMAS.iter().find(|e| e.0 == op).ok_or_else(|| {
        let names: Vec<_> = SCHEMAS.iter().map(|e| e.0).collect();
        Error::value(format!(
            "no options for {op:?}; ops with options: {names:?}"
        ))
        .into()
    })
}

/// The options of `op`: a list of dicts with their name, kind ("bool", "int", "float" or
/// "str"), default, documentation and choices (for "str").
#[pyfunction]
#[pyo3(signature = (*, op))]
fn option_schema(py: Python<'_>, op: &str) -> PyResult<PyObject> {
    (entry(op)?.1)(py)
}

/// The options of `op` with `options` set and checked, as a full dict.
#[pyfunction]
#[pyo3(signature = (*, op, options))]
fn resolve_options(op: &str, options: &Bound<'_, PyAny>) -> PyResult<PyObject> {
    (entry(op)?.2)(options)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(option_schema, m)?)?;
    m.add_function(wrap_pyfunction!(resolve_options, m)?)?;
    Ok(())
}
