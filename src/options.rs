//! The one declaration of every op's options: [`options!`] declares a struct with its
//! defaults and documentation, [`choices!`] an enum with its Python names.
//!
//! The Python bindings read nothing else: each struct's [`Schema`] gives the names, kinds,
//! defaults and documentation from which `q2l` builds the Python signatures, docstrings and
//! custom-operator schemas, and [`from_values`] is the single place an option given from
//! outside is type-checked and range-checked. Adding an option is one line in its
//! `options!` block (plus the math that reads it).

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
    /// One of these names (a [`choices!`] enum).
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

/// A struct of options declared with [`options!`].
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

/// Declares an enum whose variants have Python names: the enum, `NAMES`, `name()`,
/// `FromStr` and [`OptionType`] follow from one list.
///
/// ```ignore
/// choices! {
///     /// How per-element losses are combined.
///     pub enum Reduction("reduction") { None = "none", Sum = "sum" }
/// }
/// ```
#[macro_export]
macro_rules! choices {
    (
        $(#[$meta:meta])*
        pub enum $name:ident($what:literal) {
            $( $(#[$vmeta:meta])* $variant:ident = $py:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum $name { $( $(#[$vmeta])* $variant ),+ }

        impl $name {
            /// The Python names of the variants, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$($py),+];

            /// The Python name.
            pub fn name(self) -> &'static str {
                match self { $( $name::$variant => $py ),+ }
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::error::Error;
            fn from_str(s: &str) -> $crate::error::Result<Self> {
                match s {
                    $( $py => Ok($name::$variant), )+
                    other => Err($crate::options::unknown_choice($what, other, Self::NAMES)),
                }
            }
        }

        impl $crate::options::OptionType for $name {
            const KIND: $crate::options::Kind = $crate::options::Kind::Choice($name::NAMES);
            fn to_value(&self) -> $crate::options::Value {
                $crate::options::Value::Str(self.name().to_string())
            }
            fn from_value(name: &str, value: $crate::options::Value) -> $crate::error::Result<Self> {
                match value {
                    $crate::options::Value::Str(s) => s.parse(),
                    other => {
                        let names: Vec<_> = Self::NAMES.iter().map(|n| format!("'{n}'")).collect();
                        let want = format!("one of {}", names.join(", "));
                        Err($crate::options::wrong_type(name, &want, &other))
                    }
                }
            }
        }
    };
}

/// Declares an options struct: fields with their `///` documentation and defaults, from
/// which `Default` and [`Schema`] follow. The struct implements `check` itself, in an
/// `impl Checked for ...` (ranges and combinations).
///
/// ```ignore
/// options! {
///     /// Options of the asymmetric loss.
///     pub struct AslOptions {
///         /// Focusing exponent of negatives.
///         gamma_neg: f64 = 4.0,
///     }
/// }
/// ```
#[macro_export]
macro_rules! options {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[doc = $doc:literal])+ $field:ident : $ty:ty = $default:expr ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq)]
        pub struct $name { $( $(#[doc = $doc])+ pub $field: $ty ),+ }

        impl Default for $name {
            fn default() -> Self {
                $name { $( $field: $default ),+ }
            }
        }

        impl $crate::options::Schema for $name {
            const NAME: &'static str = stringify!($name);
            const FIELDS: &'static [$crate::options::Field] = &[$(
                $crate::options::Field {
                    name: stringify!($field),
                    kind: <$ty as $crate::options::OptionType>::KIND,
                    doc: concat!($($doc),+),
                }
            ),+];

            fn get(&self, name: &str) -> Option<$crate::options::Value> {
                use $crate::options::OptionType;
                match name {
                    $( stringify!($field) => Some(self.$field.to_value()), )+
                    _ => None,
                }
            }

            fn set(&mut self, name: &str, value: $crate::options::Value) -> $crate::error::Result<()> {
                match name {
                    $( stringify!($field) => {
                        self.$field = <$ty as $crate::options::OptionType>::from_value(name, value)?;
                    } )+
                    _ => return Err($crate::options::unknown::<Self>(name)),
                }
                Ok(())
            }

            fn check(&self) -> $crate::error::Result<()> {
                use $crate::options::OptionType;
                // The type checks again (a NaN set from Rust), then the struct's ranges.
                $( <$ty as OptionType>::from_value(stringify!($field), self.$field.to_value())?; )+
                $crate::options::Checked::check(self)
            }
        }
    };
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

#[cfg(test)]
mod tests {
    use super::*;

    choices! {
        /// A test enum.
        pub enum Color("color") { Red = "red", Dark = "dark_blue" }
    }

    options! {
        /// Test options.
        pub struct Demo {
            /// A rate.
            rate: f64 = 0.5,
            /// A count.
            count: i64 = 3,
            /// A colour.
            color: Color = Color::Red,
        }
    }

    impl Checked for Demo {
        fn check(&self) -> Result<()> {
            in_range("rate", self.rate, 0.0, 1.0, false)
        }
    }

    fn given(pairs: &[(&str, Value)]) -> Vec<(String, Value)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn defaults_and_schema_come_from_one_declaration() {
        let d = Demo::default();
        assert_eq!((d.rate, d.count, d.color), (0.5, 3, Color::Red));
        let names: Vec<_> = Demo::FIELDS.iter().map(|f| f.name).collect();
        assert_eq!(names, ["rate", "count", "color"]);
        assert_eq!(Demo::FIELDS[0].doc.trim(), "A rate.");
        assert_eq!(Demo::FIELDS[2].kind, Kind::Choice(&["red", "dark_blue"]));
        assert_eq!(d.get("color"), Some(Value::Str("red".into())));
    }

    #[test]
    fn values_are_checked_by_type_range_and_name() {
        let ok: Demo = from_values(given(&[
            ("rate", Value::Int(0)),
            ("color", Value::Str("dark_blue".into())),
        ]))
        .unwrap();
        assert_eq!((ok.rate, ok.color), (0.0, Color::Dark));
        let err = |p: &[(&str, Value)]| from_values::<Demo>(given(p)).unwrap_err().to_string();
        assert!(err(&[("count", Value::Bool(true))])
            .contains("count must be an integer, got the bool True"));
        assert!(err(&[("rate", Value::Float(f64::NAN))]).contains("finite"));
        assert!(err(&[("rate", Value::Float(1.0))]).contains("rate must be in [0, 1)"));
        assert!(err(&[("colour", Value::Int(1))]).contains("unknown option 'colour' of Demo"));
        assert!(err(&[("color", Value::Int(1))])
            .contains("color must be one of 'red', 'dark_blue', got the int 1"));
        assert!(err(&[("color", Value::Str("green".into()))])
            .contains("color must be one of 'red', 'dark_blue', got 'green'"));
    }
}
