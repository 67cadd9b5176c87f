//! The types an option may have, and the one conversion of each from a [`Value`].

use super::{Kind, Value};
use crate::error::{Error, Result};

/// A type an option may have; each converts from a [`Value`] with one check of its type.
pub trait OptionType: Sized {
    const KIND: Kind;
    fn to_value(&self) -> Value;
    /// Converts `value` given for the option `name`, refusing the wrong type by name.
    fn from_value(name: &str, value: Value) -> Result<Self>;
}

/// The error for `got`, of the wrong type, given for the option `name` that takes `want`.
pub fn wrong_type(name: &str, want: &str, got: &Value) -> Error {
    let got = match got {
        Value::Bool(b) => format!("the bool {}", if *b { "True" } else { "False" }),
        Value::Int(i) => format!("the int {i}"),
        Value::UInt(i) => format!("the int {i}"),
        Value::Float(f) => format!("the float {f}"),
        Value::Str(s) => format!("the str '{s}'"),
    };
    Error::Type(format!("{name} must be {want}, got {got}"))
}

impl OptionType for f64 {
    const KIND: Kind = Kind::Float;
    fn to_value(&self) -> Value {
        Value::Float(*self)
    }
    fn from_value(name: &str, value: Value) -> Result<Self> {
        let v = match value {
            Value::Float(f) => f,
            Value::Int(i) => i as f64,
            Value::UInt(i) => i as f64,
            other => return Err(wrong_type(name, "a number", &other)),
        };
        if !v.is_finite() {
            return Err(Error::value(format!(
                "{name} must be a finite number, got {v}"
            )));
        }
        Ok(v)
    }
}

/// `OptionType` for a type that one `Value` variant holds exactly.
macro_rules! exact_option {
    ($ty:ty, $variant:ident, $kind:ident, $want:literal) => {
        impl OptionType for $ty {
            const KIND: Kind = Kind::$kind;
            fn to_value(&self) -> Value {
                Value::$variant(*self)
            }
            fn from_value(name: &str, value: Value) -> Result<Self> {
                match value {
                    Value::$variant(v) => Ok(v),
                    other => Err(wrong_type(name, $want, &other)),
                }
            }
        }
    };
}

exact_option!(i64, Int, Int, "an integer");
exact_option!(bool, Bool, Bool, "a bool");

/// `OptionType` for an unsigned integer: a size, a count or a seed.
macro_rules! unsigned_option {
    ($($ty:ty),*) => {$(
        impl OptionType for $ty {
            const KIND: Kind = Kind::Int;
            fn to_value(&self) -> Value {
                match i64::try_from(*self) {
                    Ok(i) => Value::Int(i),
                    Err(_) => Value::UInt(*self as u64),
                }
            }
            fn from_value(name: &str, value: Value) -> Result<Self> {
                let v = match value {
                    Value::Int(i) if i < 0 => {
                        return Err(Error::value(format!("{name} must be >= 0, got {i}")))
                    }
                    Value::Int(i) => i as u64,
                    Value::UInt(i) => i,
                    other => return Err(wrong_type(name, "an integer", &other)),
                };
                <$ty>::try_from(v).map_err(|_| {
                    Error::value(format!("{name} must be <= {}, got {v}", <$ty>::MAX))
                })
            }
        }
    )*};
}
unsigned_option!(usize, u64);
