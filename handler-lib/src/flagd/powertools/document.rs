//! A Powertools document as read: JSON whose objects keep their keys in the order written
//! (Powertools evaluates a feature's rules in the order of its `rules` object, as Python's
//! `json` keeps it), and the envelope that selects it from a larger configuration.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::{Map, Number, Value};

/// A JSON value whose objects keep their keys in document order. A key written twice keeps
/// its first place and its last value, as a Python `dict` built by `json.loads` does.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Array(Vec<Node>),
    Object(Vec<(String, Node)>),
}

impl Node {
    /// Parses JSON text.
    pub(crate) fn parse(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The value as `serde_json` holds it (objects in key order).
    pub(crate) fn to_value(&self) -> Value {
        match self {
            Self::Null => Value::Null,
            Self::Bool(b) => Value::Bool(*b),
            Self::Number(n) => Value::Number(n.clone()),
            Self::String(s) => Value::String(s.clone()),
            Self::Array(items) => Value::Array(items.iter().map(Self::to_value).collect()),
            Self::Object(fields) => Value::Object(
                fields
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_value()))
                    .collect::<Map<_, _>>(),
            ),
        }
    }

    /// The value of `key`, when this is an object holding it.
    pub(crate) fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Self::Object(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Python's truthiness: `null`, `false`, `0`, `0.0`, `""`, `[]` and `{}` are false.
    pub(crate) fn truthy(&self) -> bool {
        match self {
            Self::Null => false,
            Self::Bool(b) => *b,
            Self::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
            Self::String(s) => !s.is_empty(),
            Self::Array(items) => !items.is_empty(),
            Self::Object(fields) => !fields.is_empty(),
        }
    }

    /// The kind in words, for errors.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::Bool(_) => "a boolean",
            Self::Number(_) => "a number",
            Self::String(_) => "a string",
            Self::Array(_) => "an array",
            Self::Object(_) => "an object",
        }
    }

    /// Compact JSON text, keys in document order.
    pub(crate) fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_bool<E>(self, b: bool) -> Result<Node, E> {
        Ok(Node::Bool(b))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Node, E> {
        Ok(Node::Number(n.into()))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Node, E> {
        Ok(Node::Number(n.into()))
    }
    fn visit_f64<E: de::Error>(self, f: f64) -> Result<Node, E> {
        Number::from_f64(f)
            .map(Node::Number)
            .ok_or_else(|| E::custom("a number that is not finite"))
    }
    fn visit_str<E>(self, s: &str) -> Result<Node, E> {
        Ok(Node::String(s.to_owned()))
    }
    fn visit_string<E>(self, s: String) -> Result<Node, E> {
        Ok(Node::String(s))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        /// Past this many keys, a repeated key is found through an index, not a scan (a list
        /// of 100,000 tenants is read in linear time).
        const SCAN: usize = 16;
        let mut fields: Vec<(String, Node)> = Vec::new();
        let mut index: std::collections::HashMap<String, usize> = Default::default();
        while let Some((key, value)) = map.next_entry::<String, Node>()? {
            let found = if fields.len() < SCAN {
                fields.iter().position(|(k, _)| *k == key)
            } else {
                if index.is_empty() {
                    index = fields
                        .iter()
                        .enumerate()
                        .map(|(i, (k, _))| (k.clone(), i))
                        .collect();
                }
                index.get(&key).copied()
            };
            match found {
                Some(at) => fields[at].1 = value,
                None => {
                    if !index.is_empty() || fields.len() >= SCAN {
                        index.insert(key.clone(), fields.len());
                    }
                    fields.push((key, value));
                }
            }
        }
        Ok(Node::Object(fields))
    }
}

impl Serialize for Node {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Null => serializer.serialize_unit(),
            Self::Bool(b) => serializer.serialize_bool(*b),
            Self::Number(n) => n.serialize(serializer),
            Self::String(s) => serializer.serialize_str(s),
            Self::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Self::Object(fields) => {
                let mut map = serializer.serialize_map(Some(fields.len()))?;
                for (k, v) in fields {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

impl From<&Value> for Node {
    fn from(value: &Value) -> Self {
        match value {
            Value::Null => Self::Null,
            Value::Bool(b) => Self::Bool(*b),
            Value::Number(n) => Self::Number(n.clone()),
            Value::String(s) => Self::String(s.clone()),
            Value::Array(items) => Self::Array(items.iter().map(Self::from).collect()),
            Value::Object(map) => Self::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), Self::from(v)))
                    .collect(),
            ),
        }
    }
}

/// Powertools' envelope: a JMESPath expression selecting the feature document from a larger
/// configuration (`AppConfigStore(envelope=…)`; `SSM_FLAGS_POWERTOOLS_ENVELOPE`).
///
/// An expression that is a path of fields (`features`, `config.flags`, `"my-app".features`) is
/// walked over the document as written, so the selected features keep their rules in document
/// order. Any other expression is evaluated by the `jmespath` crate, whose objects sort their
/// keys: a feature selected that way evaluates its rules in key order (documented).
#[derive(Clone)]
pub struct Envelope {
    text: String,
    fields: Option<Vec<String>>,
    expression: std::sync::Arc<jmespath::Expression<'static>>,
}

impl fmt::Debug for Envelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Envelope").field(&self.text).finish()
    }
}

impl PartialEq for Envelope {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for Envelope {}

/// An envelope that is not a JMESPath expression.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the Powertools envelope {expression:?} is not a JMESPath expression: {reason}")]
pub struct EnvelopeError {
    /// The expression as given.
    pub expression: String,
    /// What the parser said.
    pub reason: String,
}

impl Envelope {
    /// Compiles an expression.
    pub fn new(expression: &str) -> Result<Self, EnvelopeError> {
        let compiled = jmespath::compile(expression).map_err(|e| EnvelopeError {
            expression: expression.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            text: expression.to_owned(),
            fields: field_path(compiled.as_ast()),
            expression: std::sync::Arc::new(compiled),
        })
    }

    /// The expression as given.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The part of `document` the expression selects (`null` when it selects nothing, as
    /// JMESPath does).
    pub(crate) fn select(&self, document: &Node) -> Result<Node, String> {
        if let Some(fields) = &self.fields {
            let mut at = document;
            for field in fields {
                match at.get(field) {
                    Some(next) => at = next,
                    None => return Ok(Node::Null),
                }
            }
            return Ok(at.clone());
        }
        let data = jmespath::Variable::from_json(&document.to_text()).map_err(|e| e.to_string())?;
        let found = self.expression.search(data).map_err(|e| e.to_string())?;
        let value = serde_json::to_value(&*found).map_err(|e| e.to_string())?;
        Ok(Node::from(&value))
    }
}

/// The fields of an expression that only walks fields (`a.b."c-d"`), in order.
fn field_path(ast: &jmespath::ast::Ast) -> Option<Vec<String>> {
    use jmespath::ast::Ast;
    match ast {
        Ast::Field { name, .. } => Some(vec![name.clone()]),
        Ast::Subexpr { lhs, rhs, .. } => {
            let mut fields = field_path(lhs)?;
            fields.extend(field_path(rhs)?);
            Some(fields)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_keep_document_order_and_a_repeated_key_its_first_place() {
        let node = Node::parse(r#"{"z": 1, "a": {"y": 2, "b": 3}, "z": 4}"#).expect("json");
        assert_eq!(node.to_text(), r#"{"z":4,"a":{"y":2,"b":3}}"#);
        assert!(!Node::parse("0.0").expect("json").truthy());
        assert!(Node::parse("[0]").expect("json").truthy());
    }

    #[test]
    fn a_field_path_envelope_keeps_order_and_any_other_expression_is_jmespath() {
        let document =
            Node::parse(r#"{"app": {"features": {"b": {"rules": {"z": 1, "a": 2}}}}, "list": [{"n": 1}, {"n": 2}]}"#)
                .expect("json");
        let envelope = Envelope::new("app.features").expect("valid");
        let selected = envelope.select(&document).expect("selects");
        assert_eq!(selected.to_text(), r#"{"b":{"rules":{"z":1,"a":2}}}"#);
        let missing = Envelope::new("app.nothing.here").expect("valid");
        assert_eq!(missing.select(&document), Ok(Node::Null));
        let projection = Envelope::new("list[?n > `1`] | [0]").expect("valid");
        assert_eq!(
            projection.select(&document).expect("selects").to_text(),
            r#"{"n":2}"#
        );
        let quoted = Envelope::new(r#""app".features"#).expect("valid");
        assert_eq!(quoted.select(&document), Ok(selected));
        let error = Envelope::new("app.[").expect_err("invalid");
        assert!(error.to_string().contains("\"app.[\""), "{error}");
    }
}
