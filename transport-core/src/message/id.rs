//! JSON-RPC request ids.

use std::fmt;
use std::sync::Arc;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A JSON-RPC request id: a string or an integer, never null.
///
/// Ids are echoed back exactly as they arrived: `1` and `"1"` are different ids.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Id {
    /// An integer id.
    Number(i64),
    /// A string id.
    String(Arc<str>),
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Id::Number(n) => write!(f, "{n}"),
            Id::String(s) => write!(f, "{s:?}"),
        }
    }
}

impl From<i64> for Id {
    fn from(n: i64) -> Self {
        Id::Number(n)
    }
}

impl From<&str> for Id {
    fn from(s: &str) -> Self {
        Id::String(s.into())
    }
}

impl From<String> for Id {
    fn from(s: String) -> Self {
        Id::String(s.into())
    }
}

impl Serialize for Id {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Id::Number(n) => s.serialize_i64(*n),
            Id::String(v) => s.serialize_str(v),
        }
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match IdField::deserialize(d)? {
            IdField::Valid(id) => Ok(id),
            IdField::Null => Err(de::Error::custom("an id must not be null")),
            IdField::Invalid(what) => Err(de::Error::custom(format!("ids must be strings or integers, got {what}"))),
        }
    }
}

/// What the `id` member of a received object held, before validation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum IdField {
    /// A valid id.
    Valid(Id),
    /// `null`.
    Null,
    /// Something that is not a valid id (a float, a boolean, an object, an out-of-range integer).
    Invalid(&'static str),
}

impl<'de> Deserialize<'de> for IdField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = IdField;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or integer id")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<IdField, E> {
                Ok(IdField::Valid(Id::Number(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<IdField, E> {
                Ok(i64::try_from(v)
                    .map_or(IdField::Invalid("an integer id larger than 2^63-1"), |n| IdField::Valid(Id::Number(n))))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<IdField, E> {
                Ok(IdField::Invalid("a fractional number id"))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<IdField, E> {
                Ok(IdField::Invalid("a boolean id"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<IdField, E> {
                Ok(IdField::Valid(Id::String(v.into())))
            }
            fn visit_unit<E: de::Error>(self) -> Result<IdField, E> {
                Ok(IdField::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<IdField, E> {
                Ok(IdField::Null)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<IdField, A::Error> {
                while seq.next_element::<de::IgnoredAny>()?.is_some() {}
                Ok(IdField::Invalid("an array id"))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<IdField, A::Error> {
                while map.next_entry::<de::IgnoredAny, de::IgnoredAny>()?.is_some() {}
                Ok(IdField::Invalid("an object id"))
            }
        }
        d.deserialize_any(V)
    }
}

/// Deserializes a present `id` member (including `null`) as `Some`.
pub(crate) fn present_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<IdField>, D::Error> {
    IdField::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(json: &str) -> IdField {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn accepts_strings_and_integers() {
        assert_eq!(field("7"), IdField::Valid(Id::Number(7)));
        assert_eq!(field("-7"), IdField::Valid(Id::Number(-7)));
        assert_eq!(field("\"7\""), IdField::Valid(Id::from("7")));
    }

    #[test]
    fn refuses_null_floats_and_huge_integers() {
        assert_eq!(field("null"), IdField::Null);
        assert!(matches!(field("1.5"), IdField::Invalid(_)));
        assert!(matches!(field("18446744073709551615"), IdField::Invalid(_)));
        assert!(matches!(field("{\"a\":1}"), IdField::Invalid(_)));
        assert!(matches!(field("true"), IdField::Invalid(_)));
    }

    #[test]
    fn serializes_exactly() {
        assert_eq!(serde_json::to_string(&Id::Number(-3)).unwrap(), "-3");
        assert_eq!(serde_json::to_string(&Id::from("a\"b")).unwrap(), "\"a\\\"b\"");
    }
}
