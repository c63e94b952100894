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

/// One step of a key path.
#[derive(Debug, Clone, PartialEq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// Where a value is, e.g. `proxies[1].remotePort`. Kept as steps so a map key with a `.` in it
/// (`metadatas."a.b"`) is still one step.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyPath(pub Vec<Seg>);

impl KeyPath {
    fn key(&self, k: &str) -> KeyPath {
        let mut p = self.clone();
        p.0.push(Seg::Key(k.to_owned()));
        p
    }

    fn index(&self, i: usize) -> KeyPath {
        let mut p = self.clone();
        p.0.push(Seg::Index(i));
        p
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            match s {
                Seg::Key(k) if i == 0 => f.write_str(k)?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// What a value should have been, in a user's words; also gives a stand-in value that always
/// decodes, so decoding can go on past a bad value and report everything else too.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Expected {
    /// `u16`: every one in the config is a port.
    Port,
    Integer,
    Bool,
    String,
    List,
    Table,
}

impl Expected {
    fn words(self) -> &'static str {
        match self {
            Expected::Port => "a port number (0-65535)",
            Expected::Integer => "an integer",
            Expected::Bool => "true or false",
            Expected::String => "a string",
            Expected::List => "a list",
            Expected::Table => "a table",
        }
    }

    /// A value of this kind that decodes into any field of the kind.
    pub fn stand_in(self) -> Value {
        match self {
            Expected::Port | Expected::Integer => Value::from(0),
            Expected::Bool => Value::Bool(false),
            Expected::String => Value::String(String::new()),
            Expected::List => Value::Array(Vec::new()),
            Expected::Table => Value::Object(Map::new()),
        }
    }
}

/// A decoding error with the key path where it happened.
#[derive(Debug, Clone, PartialEq)]
pub struct DeError {
    pub path: KeyPath,
    pub msg: String,
    /// Set for a value of the wrong kind.
    pub expected: Option<Expected>,
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.0.is_empty() {
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
            path: KeyPath::default(),
            msg: msg.to_string(),
            expected: None,
        }
    }
}

impl DeError {
    fn at(mut self, path: &KeyPath) -> Self {
        if self.path.0.is_empty() {
            self.path = path.clone();
        }
        self
    }

    /// A value of the wrong kind: `expected a port number (0-65535), found the string "x"`.
    fn mismatch(path: KeyPath, v: &Value, e: Expected) -> Self {
        DeError {
            path,
            msg: format!("expected {}, found {}", e.words(), found(v)),
            expected: Some(e),
        }
    }
}

/// How a value is named in messages.
fn found(v: &Value) -> String {
    match v {
        Value::Null => "nothing".into(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) if s.chars().count() > 40 => {
            format!("the string {:?}...", s.chars().take(40).collect::<String>())
        }
        Value::String(s) => format!("the string {s:?}"),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a table".into(),
    }
}

/// Replaces (`Some`) or removes (`None`) the value at `path`; false when there is none.
/// Keys match as the decoder matches them: exactly, else ignoring ASCII case.
pub fn replace(root: &mut Value, path: &KeyPath, with: Option<Value>) -> bool {
    let Some((last, parents)) = path.0.split_last() else {
        return false;
    };
    let mut cur = root;
    for seg in parents {
        let next = match (seg, cur) {
            (Seg::Key(k), Value::Object(m)) => {
                let actual = m
                    .keys()
                    .find(|n| *n == k)
                    .or_else(|| m.keys().find(|n| n.eq_ignore_ascii_case(k)))
                    .cloned();
                actual.and_then(|a| m.get_mut(&a))
            }
            (Seg::Index(i), Value::Array(a)) => a.get_mut(*i),
            _ => None,
        };
        match next {
            Some(n) => cur = n,
            None => return false,
        }
    }
    match (last, cur) {
        (Seg::Key(k), Value::Object(m)) => {
            let keys: Vec<String> = m
                .keys()
                .filter(|n| n.eq_ignore_ascii_case(k))
                .cloned()
                .collect();
            for key in &keys {
                match &with {
                    Some(v) => {
                        m.insert(key.clone(), v.clone());
                    }
                    None => {
                        m.remove(key);
                    }
                }
            }
            !keys.is_empty()
        }
        (Seg::Index(i), Value::Array(a)) if *i < a.len() => {
            match with {
                Some(v) => a[*i] = v,
                None => {
                    a.remove(*i);
                }
            }
            true
        }
        _ => false,
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
        path: KeyPath::default(),
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

struct De<'c> {
    v: Value,
    path: KeyPath,
    c: &'c Collector,
}

macro_rules! forward {
    ($($m:ident)*) => {$(
        fn $m<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            let path = self.path;
            self.v.$m(visitor).map_err(|e| DeError { path, msg: e.to_string(), expected: None })
        }
    )*};
}

/// Integers, range-checked here so the message names the value and what it should be.
macro_rules! integer {
    ($($m:ident $t:ty => $e:expr;)*) => {$(
        fn $m<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            self.integer(visitor, $e, i128::from(<$t>::MIN), i128::from(<$t>::MAX))
        }
    )*};
}

impl De<'_> {
    fn integer<'de, V: Visitor<'de>>(
        self,
        visitor: V,
        e: Expected,
        min: i128,
        max: i128,
    ) -> Result<V::Value, DeError> {
        let n = match &self.v {
            Value::Number(n) => n
                .as_i64()
                .map(i128::from)
                .or_else(|| n.as_u64().map(i128::from)),
            _ => None,
        };
        match n {
            Some(n) if (min..=max).contains(&n) => match i64::try_from(n) {
                Ok(i) => visitor.visit_i64(i),
                Err(_) => visitor.visit_u64(u64::try_from(n).unwrap_or(u64::MAX)),
            }
            .map_err(|err: DeError| err.at(&self.path)),
            Some(n) => Err(DeError {
                path: self.path,
                msg: if e == Expected::Port {
                    format!("{n} is not {}", e.words())
                } else {
                    format!("{n} is out of range ({min} to {max})")
                },
                expected: Some(e),
            }),
            None => Err(DeError::mismatch(self.path, &self.v, e)),
        }
    }
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
                    expected: None,
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
            other => return Err(DeError::mismatch(self.path, &other, Expected::Table)),
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
                    path: self.path.key(&k).to_string(),
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
            other => Err(DeError::mismatch(self.path, &other, Expected::List)),
        }
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.v {
            Value::Object(m) => visitor.visit_map(MapDe::new(m, self.path, self.c)),
            Value::Null => visitor.visit_map(MapDe::new(Map::new(), self.path, self.c)),
            other => Err(DeError::mismatch(self.path, &other, Expected::Table)),
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
            expected: None,
        })
    }

    forward!(deserialize_f32 deserialize_f64 deserialize_char deserialize_bytes deserialize_byte_buf
        deserialize_unit deserialize_identifier deserialize_ignored_any);

    integer! {
        deserialize_i8 i8 => Expected::Integer;
        deserialize_i16 i16 => Expected::Integer;
        deserialize_i32 i32 => Expected::Integer;
        deserialize_i64 i64 => Expected::Integer;
        deserialize_u8 u8 => Expected::Integer;
        deserialize_u16 u16 => Expected::Port;
        deserialize_u32 u32 => Expected::Integer;
        deserialize_u64 u64 => Expected::Integer;
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.v {
            Value::Bool(b) => visitor.visit_bool(b),
            other => Err(DeError::mismatch(self.path, &other, Expected::Bool)),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_string(visitor)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.v {
            Value::String(s) => visitor
                .visit_string(s)
                .map_err(|e: DeError| e.at(&self.path)),
            other => Err(DeError::mismatch(self.path, &other, Expected::String)),
        }
    }

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
    path: KeyPath,
    c: &'c Collector,
}

impl<'c> MapDe<'c> {
    fn new(m: Map<String, Value>, path: KeyPath, c: &'c Collector) -> Self {
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
            expected: None,
        })?;
        let path = self.path.key(&k);
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
    path: KeyPath,
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
                let path = self.path.index(i);
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
