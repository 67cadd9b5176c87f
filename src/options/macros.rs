//! [`options!`](crate::options!) and [`choices!`](crate::choices!): one declaration per
//! options struct and per enum.

/// Declares an enum whose variants have Python names: the enum, `NAMES`, `name()`,
/// `FromStr` and [`OptionType`](crate::options::OptionType) follow from one list.
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
/// which `Default` and [`Schema`](crate::options::Schema) follow. The struct implements `check` itself, in an
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

#[cfg(test)]
mod tests {
    use crate::options::*;

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
