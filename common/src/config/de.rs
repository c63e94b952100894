//! A serde deserializer over a parsed document (`serde_json::Value`) that decodes as Go's
//! `encoding/json` does for frp: keys match struct fields case-insensitively (an exact match
//! wins), and unknown keys are collected with their path instead of failing at once, so the
//! loader can report all of them with their lines.
//!
//! Structs whose allowed keys depend on a `type` key (proxies, visitors, plugins) are one union
//! struct in Rust; [`type_fields`] tells, per type, which of the union's fields Go's struct for
//! that type has. A key outside that list is unknown, as in frp.

use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::cell::RefCell;
use std::fmt;

/// A decoding error with the key path where it happened.
#[derive(Debug, Clone, PartialEq)]
pub struct DeError {
    pub path: String,
    pub msg: String,
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.msg)
        } else {
            write!(f, "{}: {}", self.path, self.msg)
        }
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError {
            path: String::new(),
            msg: msg.to_string(),
        }
    }
}

impl DeError {
    fn at(mut self, path: &str) -> Self {
        if self.path.is_empty() {
            self.path = path.to_owned();
        }
        self
    }
}

/// An unknown key: its path and the fields that were valid there (for suggestions).
#[derive(Debug, Clone, PartialEq)]
pub struct Unknown {
    pub path: String,
    pub key: String,
    pub valid: Vec<&'static str>,
}

/// Collects unknown keys during one decode.
#[derive(Debug, Default)]
pub struct Collector {
    pub unknown: RefCell<Vec<Unknown>>,
}

/// Decodes `T` from `v`; unknown keys go to the returned list.
pub fn from_value<T: de::DeserializeOwned>(v: Value) -> Result<(T, Vec<Unknown>), DeError> {
    let c = Collector::default();
    let t = T::deserialize(De {
        v,
        path: String::new(),
        c: &c,
    })?;
    Ok((t, c.unknown.into_inner()))
}

/// For a `type`-dispatched union struct: the fields Go's struct for this `type` has.
/// `None` = not a dispatched struct, or an unknown type (validation reports the type).
fn type_fields(struct_name: &str, kind: &str) -> Option<&'static [&'static str]> {
    match struct_name {
        "ProxyConfig" => super::proxy::proxy_fields(kind),
        "VisitorConfig" => super::visitor::visitor_fields(kind),
        "PluginConfig" => super::plugin::plugin_fields(kind),
        "VisitorPluginConfig" => super::visitor::visitor_plugin_fields(kind),
        _ => None,
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "a table",
    }
}

struct De<'c> {
    v: Value,
    path: String,
    c: &'c Collector,
}

macro_rules! forward {
    ($($m:ident)*) => {$(
        fn $m<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            let path = self.path.clone();
            self.v.$m(visitor).map_err(|e| DeError { path, msg: e.to_string() })
        }
    )*};
}

impl<'de, 'c> de::Deserializer<'de> for De<'c> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.v {
            Value::Object(m) => visitor.visit_map(MapDe::new(m, self.path, self.c)),
            Value::Array(a) => visitor.visit_seq(SeqDe {
                it: a.into_iter().enumerate(),
                path: self.path,
                c: self.c,
            }),
            other => {
                let path = self.path;
                other.deserialize_any(visitor).map_err(|e| DeError {
                    path,
                    msg: e.to_string(),
                })
            }
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let m = match self.v {
            Value::Object(m) => m,
            other => {
                return Err(DeError {
                    path: self.path,
                    msg: format!("expected a table, found {}", kind_of(&other)),
                })
            }
        };
        // Fields valid for this struct (narrowed by `type` for dispatched unions).
        let kind = m
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("type"))
            .and_then(|(_, v)| v.as_str());
        let valid: &'static [&'static str] =
            kind.and_then(|k| type_fields(name, k)).unwrap_or(fields);
        let mut out = Map::new();
        for (k, v) in m {
            let field = fields
                .iter()
                .find(|f| **f == k)
                .or_else(|| fields.iter().find(|f| f.eq_ignore_ascii_case(&k)));
            match field {
                Some(f) if valid.contains(f) || *f == "type" => {
                    out.insert((*f).to_owned(), v);
                }
                _ => self.c.unknown.borrow_mut().push(Unknown {
                    path: join(&self.path, &k),
                    key: k,
                    valid: valid.to_vec(),
                }),
            }
        }
        visitor.visit_map(MapDe::new(out, self.path, self.c))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.v {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.v {
            Value::Array(a) => visitor.visit_seq(SeqDe {
                it: a.into_iter().enumerate(),
                path: self.path,
                c: self.c,
            }),
            // Go decodes null into a nil slice.
            Value::Null => visitor.visit_seq(SeqDe {
                it: Vec::new().into_iter().enumerate(),
                path: self.path,
                c: self.c,
            }),
            other => Err(DeError {
                path: self.path,
                msg: format!("expected an array, found {}", kind_of(&other)),
            }),
        }
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.v {
            Value::Object(m) => visitor.visit_map(MapDe::new(m, self.path, self.c)),
            Value::Null => visitor.visit_map(MapDe::new(Map::new(), self.path, self.c)),
            other => Err(DeError {
                path: self.path,
                msg: format!("expected a table, found {}", kind_of(&other)),
            }),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let e = self.v.deserialize_enum(name, variants, visitor);
        e.map_err(|e| DeError {
            path: self.path,
            msg: e.to_string(),
        })
    }

    forward!(deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_u8
        deserialize_u16 deserialize_u32 deserialize_u64 deserialize_f32 deserialize_f64 deserialize_char
        deserialize_str deserialize_string deserialize_bytes deserialize_byte_buf deserialize_unit
        deserialize_identifier deserialize_ignored_any);

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _n: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }
}

struct MapDe<'c> {
    it: serde_json::map::IntoIter,
    pending: Option<(String, Value)>,
    path: String,
    c: &'c Collector,
}

impl<'c> MapDe<'c> {
    fn new(m: Map<String, Value>, path: String, c: &'c Collector) -> Self {
        MapDe {
            it: m.into_iter(),
            pending: None,
            path,
            c,
        }
    }
}

impl<'de, 'c> MapAccess<'de> for MapDe<'c> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        match self.it.next() {
            Some((k, v)) => {
                let key = seed
                    .deserialize(k.as_str().into_deserializer())
                    .map_err(|e: DeError| e.at(&self.path))?;
                self.pending = Some((k, v));
                Ok(Some(key))
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let (k, v) = self.pending.take().ok_or_else(|| DeError {
            path: self.path.clone(),
            msg: "value without key".into(),
        })?;
        let path = join(&self.path, &k);
        seed.deserialize(De {
            v,
            path: path.clone(),
            c: self.c,
        })
        .map_err(|e| e.at(&path))
    }
}

struct SeqDe<'c> {
    it: std::iter::Enumerate<std::vec::IntoIter<Value>>,
    path: String,
    c: &'c Collector,
}

impl<'de, 'c> SeqAccess<'de> for SeqDe<'c> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        match self.it.next() {
            Some((i, v)) => {
                let path = format!("{}[{i}]", self.path);
                seed.deserialize(De {
                    v,
                    path: path.clone(),
                    c: self.c,
                })
                .map(Some)
                .map_err(|e| e.at(&path))
            }
            None => Ok(None),
        }
    }
}
