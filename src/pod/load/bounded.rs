//! The first pass: any YAML document read into a generic value while every value and level
//! is counted, so that a too-deep document or an alias bomb fails while it is still small.

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::pod::error::PodError;

/// Bounds on one manifest file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Size of the file in bytes.
    pub max_bytes: usize,
    /// Nesting of mappings and sequences; a Pod needs about 10.
    pub max_depth: usize,
    /// Scalars, sequences and mappings in the whole file after alias expansion.
    pub max_values: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_bytes: 1024 * 1024,
            max_depth: 64,
            // About what 1 MiB of the tersest YAML holds; a bomb goes far past it.
            max_values: 500_000,
        }
    }
}

/// Counts values across the whole file; `tripped` says which bound stopped the parse.
pub(super) struct Budget<'a> {
    values: Cell<usize>,
    tripped: Cell<Option<Bound>>,
    limits: &'a Limits,
}

#[derive(Clone, Copy)]
enum Bound {
    Depth,
    Values,
}

impl Budget<'_> {
    pub(super) fn new(limits: &Limits) -> Budget<'_> {
        Budget {
            values: Cell::new(0),
            tripped: Cell::new(None),
            limits,
        }
    }

    /// One document as a generic value, or the error of the bound it broke.
    pub(super) fn read(
        &self,
        index: usize,
        document: serde_yaml::Deserializer<'_>,
    ) -> Result<Value, PodError> {
        ValueSeed {
            budget: self,
            depth: 0,
        }
        .deserialize(document)
        .map_err(|e| self.error(index, &e))
    }

    fn count<E: de::Error>(&self) -> Result<(), E> {
        let n = self.values.get() + 1;
        self.values.set(n);
        if n > self.limits.max_values {
            self.tripped.set(Some(Bound::Values));
            return Err(E::custom("too many values"));
        }
        Ok(())
    }

    fn error(&self, document: usize, error: &serde_yaml::Error) -> PodError {
        let message = error.to_string();
        match self.tripped.get() {
            Some(Bound::Depth) => PodError::TooDeep {
                file: None,
                document,
                limit: self.limits.max_depth,
            },
            Some(Bound::Values) => PodError::TooManyValues {
                file: None,
                document,
                limit: self.limits.max_values,
            },
            // serde_yaml's own guard against aliases that refer to aliases.
            None if message.starts_with("repetition limit exceeded") => PodError::TooManyValues {
                file: None,
                document,
                limit: self.limits.max_values,
            },
            None => PodError::Syntax {
                file: None,
                document: Some(document),
                message,
            },
        }
    }
}

/// Builds a JSON value from any YAML document while enforcing the budget.
#[derive(Clone, Copy)]
struct ValueSeed<'a, 'b> {
    budget: &'a Budget<'b>,
    depth: usize,
}

impl ValueSeed<'_, '_> {
    fn nested<E: de::Error>(&self) -> Result<ValueSeed<'_, '_>, E> {
        if self.depth + 1 > self.budget.limits.max_depth {
            self.budget.tripped.set(Some(Bound::Depth));
            return Err(E::custom("nested too deep"));
        }
        Ok(ValueSeed {
            budget: self.budget,
            depth: self.depth + 1,
        })
    }
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_, '_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_, '_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        self.budget.count()?;
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        self.budget.count()?;
        Ok(Value::from(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        self.budget.count()?;
        Ok(Value::from(v))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Value, E> {
        self.budget.count()?;
        Ok(Value::String(v.to_string()))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        self.budget.count()?;
        Ok(Value::String(v.to_string()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        self.budget.count()?;
        // .nan and .inf have no JSON form; only keys matter after this pass.
        Ok(serde_json::Number::from_f64(v)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(v.to_string())))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        self.budget.count()?;
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        self.budget.count()?;
        Ok(Value::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        self.budget.count()?;
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        self.visit_unit()
    }

    fn visit_some<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.budget.count()?;
        let inner = self.nested()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(inner)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.budget.count()?;
        let inner = self.nested()?;
        let mut object = Map::new();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            if object.contains_key(&key) {
                return Err(de::Error::custom(format!("duplicate key {key:?}")));
            }
            let value = map.next_value_seed(inner)?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// Mapping keys: strings, or scalars YAML did not quote (`80: x`), as their text.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = String;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<String, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl Visitor<'_> for KeySeed {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
        Ok(v.to_string())
    }
}
