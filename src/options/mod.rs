//! The one declaration of every op's options: [`options!`](crate::options!) declares a
//! struct with its defaults and documentation, [`choices!`](crate::choices!) an enum with its
//! Python names.
//!
//! The Python bindings read nothing else: each struct's [`Schema`] gives the names, kinds,
//! defaults and documentation from which `q2l` builds the Python signatures, docstrings and
//! custom-operator schemas, and [`from_values`] is the single place an option given from
//! outside is type-checked and range-checked. Adding an option is one line in its
//! `options!` block (plus the math that reads it).

mod macros;
mod types;

pub use types::{wrong_type, OptionType};

use crate::error::{Error, Result};

/// An option's value as it crosses the boundary.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Bool(bool),
    Int(i64),
    /// An integer above `i64::MAX` (a 64-bit seed).
    UInt(u64),
    Float(f64),
    Str(String),
}

/// What an option holds: the Python type of its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Bool,
    Int,
    Float,
    /// One of these names (a [`choices!`](crate::choices!) enum).
    Choice(&'static [&'static str]),
}

/// One option of a [`Schema`].
#[derive(Clone, Copy, Debug)]
pub struct Field {
    /// The Python name, which is also the Rust field's.
    pub name: &'static str,
    pub kind: Kind,
    /// The `///` documentation of the field, one line.
    pub doc: &'static str,
}

/// A struct of options declared with [`options!`](crate::options!).
pub trait Schema: Default + Clone {
    /// The struct's name, for messages.
    const NAME: &'static str;
    /// Every option, in declaration order.
    const FIELDS: &'static [Field];
    /// The value of the option `name`, `None` if there is no such option.
    fn get(&self, name: &str) -> Option<Value>;
    /// Sets the option `name`, refusing an unknown name or a value of the wrong type.
    fn set(&mut self, name: &str, value: Value) -> Result<()>;
    /// Checks the options' ranges and how they combine.
    fn check(&self) -> Result<()>;
}

/// The defaults with `given` options set, each checked: unknown names, wrong types and
/// values out of range are errors that name the option.
pub fn from_values<T: Schema>(given: impl IntoIterator<Item = (String, Value)>) -> Result<T> {
    let mut out = T::default();
    for (name, value) in given {
        out.set(&name, value)?;
    }
    out.check()?;
    Ok(out)
}

/// The error for an option `name` that `T` does not have.
pub fn unknown<T: Schema>(name: &str) -> Error {
    let known: Vec<_> = T::FIELDS.iter().map(|f| f.name).collect();
    Error::value(format!(
        "unknown option '{name}' of {}; expected one of {}",
        T::NAME,
        known.join(", ")
    ))
}

/// The error for `name`, not one of `names`, given for the argument `what`.
pub fn unknown_choice(what: &str, name: &str, names: &[&str]) -> Error {
    let names: Vec<_> = names.iter().map(|n| format!("'{n}'")).collect();
    Error::value(format!(
        "{what} must be one of {}, got '{name}'",
        names.join(", ")
    ))
}

/// The range checks of an options struct (every field's type is checked already).
pub trait Checked {
    fn check(&self) -> Result<()>;
}

/// Refuses `value` of option `name` unless it is in `[lo, hi)` (or `[lo, hi]` if `closed`).
pub fn in_range(name: &str, value: f64, lo: f64, hi: f64, closed: bool) -> Result<()> {
    let ok = value >= lo && (value < hi || (closed && value == hi));
    if !ok {
        let close = if closed { ']' } else { ')' };
        return Err(Error::value(format!(
            "{name} must be in [{lo}, {hi}{close}, got {value}"
        )));
    }
    Ok(())
}

/// Refuses `value` of option `name` unless it is at least 1 (a size).
pub fn positive(name: &str, value: i64) -> Result<()> {
    if value < 1 {
        return Err(Error::value(format!(
            "{name} must be a positive int, got {value}"
        )));
    }
    Ok(())
}

/// Refuses `value` of option `name` unless it is at least `lo`.
pub fn at_least<T: PartialOrd + std::fmt::Display>(name: &str, value: T, lo: T) -> Result<()> {
    if value < lo {
        return Err(Error::value(format!("{name} must be >= {lo}, got {value}")));
    }
    Ok(())
}
