//! Wire types: the JSON each ComfyUI line sends, field for field.
//!
//! These mirror the recordings in `fixtures/`. Fields that only some lines
//! send are `Option` and say which lines in their docs; `crate::normalize`
//! turns them into the model in `crate::model`. Deserializing them never
//! panics: arbitrary JSON gives a value or a `serde_json::Error`.

/// The `visit_*` methods of a lenient visitor for every JSON scalar:
/// `$t::default()`.
macro_rules! default_for_scalars {
    ($t:ty) => {
        fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<$t, E> {
            Ok(<$t>::default())
        }
        fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<$t, E> {
            Ok(<$t>::default())
        }
        fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<$t, E> {
            Ok(<$t>::default())
        }
        fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<$t, E> {
            Ok(<$t>::default())
        }
        fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<$t, E> {
            Ok(<$t>::default())
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<$t, E> {
            Ok(<$t>::default())
        }
    };
}
pub(crate) use default_for_scalars;

/// [`default_for_scalars`] plus a list (its elements skipped): the
/// `visit_*` methods of a lenient object visitor for every JSON value that
/// is not an object.
macro_rules! default_for_non_objects {
    ($t:ty) => {
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<$t, A::Error> {
            while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
            Ok(<$t>::default())
        }
        $crate::wire::default_for_scalars!($t);
    };
}
pub(crate) use default_for_non_objects;

/// An object key, borrowed from the body when it has no escapes (serde's
/// own `Cow<str>` always allocates): what the lenient visitors match keys
/// with.
pub(crate) struct Key<'de>(pub(crate) std::borrow::Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E: serde::de::Error>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Borrowed(s)))
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Owned(s.to_owned())))
            }
            fn visit_string<E: serde::de::Error>(self, s: String) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Owned(s)))
            }
        }
        d.deserialize_str(V)
    }
}

impl Key<'_> {
    /// The key's text.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

pub mod history;
pub mod jobs;
pub mod outputs;
pub mod prompt;
pub mod queue;
pub mod system;
pub mod tuple;
pub mod userdata;
pub mod ws;
