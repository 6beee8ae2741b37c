//! Manifest bytes (YAML, possibly several `---` documents, or JSON) to Kubernetes objects,
//! with bounded cost.
//!
//! Two passes over the text, both with serde_yaml (JSON is YAML). The first reads each
//! document into a generic value, counting every value and level as it is built, so that a
//! too-deep document or an alias bomb fails while it is still small; that value gives
//! `apiVersion` and `kind`, and duplicate keys are refused there. The second reads the
//! Kubernetes types.
//!
//! The typed object is serialised again and compared with the generic value: a key that did
//! not survive is a field Kubernetes does not know (a typo, or a newer API), which kubectl
//! refuses under strict validation and layerlet refuses too, rather than ignore it silently.

use std::cell::Cell;
use std::fmt;

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use serde::de::{self, DeserializeOwned, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::{FieldError, PodError};

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

#[derive(Debug, Clone)]
pub enum Object {
    Pod(Box<Pod>),
    ConfigMap(Box<ConfigMap>),
    Secret(Box<Secret>),
}

#[derive(Debug, Clone)]
pub struct Document {
    /// Position in the file, counted from 1 (empty documents included).
    pub index: usize,
    pub object: Object,
}

#[derive(Clone, Copy)]
enum Kind {
    Pod,
    ConfigMap,
    Secret,
}

/// Parses every non-empty document of a manifest. Fails on the first bad document.
pub fn load_documents(bytes: &[u8], limits: &Limits) -> Result<Vec<Document>, PodError> {
    if bytes.len() > limits.max_bytes {
        return Err(PodError::TooLarge {
            file: None,
            size: bytes.len(),
            limit: limits.max_bytes,
        });
    }

    let budget = Budget {
        values: Cell::new(0),
        tripped: Cell::new(None),
        limits,
    };
    let mut generic = Vec::new();
    for (i, document) in serde_yaml::Deserializer::from_slice(bytes).enumerate() {
        let index = i + 1;
        let mut value = ValueSeed {
            budget: &budget,
            depth: 0,
        }
        .deserialize(document)
        .map_err(|e| budget.error(index, &e))?;
        if value.is_null() {
            continue;
        }
        let kind = kind_of(&value).map_err(|e| PodError::invalid(Some(index), e))?;
        if let Kind::Pod = kind {
            octal_file_modes(&mut value);
        }
        generic.push((index, kind, value));
    }

    // Second pass, now that the text is known to be bounded: the typed objects.
    let mut documents = Vec::with_capacity(generic.len());
    let mut pending = generic.into_iter().peekable();
    for (i, document) in serde_yaml::Deserializer::from_slice(bytes).enumerate() {
        let Some((index, kind, value)) = pending.next_if(|(index, _, _)| *index == i + 1) else {
            if pending.peek().is_none() {
                break;
            }
            continue;
        };
        let object = match kind {
            Kind::Pod => Object::Pod(Box::new(typed(index, document, &value)?)),
            Kind::ConfigMap => Object::ConfigMap(Box::new(typed(index, document, &value)?)),
            Kind::Secret => Object::Secret(Box::new(typed(index, document, &value)?)),
        };
        documents.push(Document { index, object });
    }
    Ok(documents)
}

/// Kubernetes reads YAML 1.1, where `defaultMode: 0644` is octal; serde_yaml reads YAML 1.2,
/// where it is the string "0644". File modes are the one place manifests rely on this, and a
/// string is never valid there, so such strings under `mode` and `defaultMode` become numbers.
fn octal_file_modes(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if key == "mode" || key == "defaultMode" {
                    if let Some(n) = v.as_str().and_then(yaml11_octal) {
                        *v = Value::from(n);
                        continue;
                    }
                }
                octal_file_modes(v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(octal_file_modes),
        _ => {}
    }
}

/// `0644` -> 420; anything else (including `0`, which is already a number) -> None.
fn yaml11_octal(s: &str) -> Option<i64> {
    let digits = s.strip_prefix('0')?;
    if digits.is_empty() || digits.len() > 4 || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b))
    {
        return None;
    }
    i64::from_str_radix(digits, 8).ok()
}

const SUPPORTED_KINDS: &str = "a manifest may hold Pod, ConfigMap and Secret objects";

fn kind_of(value: &Value) -> Result<Kind, FieldError> {
    let Value::Object(map) = value else {
        return Err(FieldError::new(
            "",
            format!(
                "expected an object with apiVersion and kind, found {}",
                describe(value)
            ),
        ));
    };
    let text = |field: &str| match map.get(field) {
        None | Some(Value::Null) => Err(FieldError::new(field, "required")),
        Some(Value::String(s)) if s.is_empty() => Err(FieldError::new(field, "required")),
        Some(Value::String(s)) => Ok(s.as_str()),
        Some(other) => Err(FieldError::new(
            field,
            format!("expected a string, found {}", describe(other)),
        )),
    };
    let kind_name = text("kind")?;
    let kind = match kind_name {
        "Pod" => Kind::Pod,
        "ConfigMap" => Kind::ConfigMap,
        "Secret" => Kind::Secret,
        other => {
            return Err(FieldError::new(
                "kind",
                format!("unsupported kind {other:?}; {SUPPORTED_KINDS}"),
            ))
        }
    };
    let api_version = text("apiVersion")?;
    if api_version != "v1" {
        return Err(FieldError::new(
            "apiVersion",
            format!("unsupported value {api_version:?} for kind {kind_name}; expected v1"),
        ));
    }
    Ok(kind)
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The Kubernetes type, then the unknown-field check.
///
/// Read from the document's own text first: serde_yaml is as lenient as Kubernetes' YAML
/// reader about plain scalars (`command: [true]` is the string "true") and its errors carry
/// the field path and line. Only if that fails is it read again from the generic value
/// re-encoded as YAML, which has YAML 1.1 octal file modes as numbers; an error there names
/// the field but no line, since the lines would be those of the re-encoded text.
fn typed<T>(
    index: usize,
    document: serde_yaml::Deserializer<'_>,
    generic: &Value,
) -> Result<T, PodError>
where
    T: DeserializeOwned + serde::Serialize,
{
    let object = match T::deserialize(document) {
        Ok(object) => object,
        Err(original) => {
            let original = yaml_field_error(&original, true);
            let reencoded = serde_yaml::to_string(generic)
                .map_err(|_| PodError::invalid(Some(index), original.clone()))?;
            match T::deserialize(serde_yaml::Deserializer::from_str(&reencoded)) {
                Ok(object) => object,
                Err(e) => {
                    let e = yaml_field_error(&e, false);
                    // The same field failing both ways: keep the message with the line.
                    let best = if e.field == original.field {
                        original
                    } else {
                        e
                    };
                    return Err(PodError::invalid(Some(index), best));
                }
            }
        }
    };
    let known = serde_json::to_value(&object).map_err(|e| {
        PodError::invalid(
            Some(index),
            FieldError::new("", format!("cannot re-encode: {e}")),
        )
    })?;
    let mut unknown = Vec::new();
    unknown_fields(generic, &known, &mut String::new(), &mut unknown);
    if let Some(e) = PodError::from_field_errors(index, unknown) {
        return Err(e);
    }
    Ok(object)
}

/// serde_yaml renders `spec.containers[0]: missing field `name` at line 5 column 7`; this
/// splits that into Kubernetes' `spec.containers[0].name: required (line 5, column 7)`.
fn yaml_field_error(error: &serde_yaml::Error, with_line: bool) -> FieldError {
    let mut text = error.to_string();
    let mut at = String::new();
    if let Some(location) = error.location() {
        let suffix = format!(" at line {} column {}", location.line(), location.column());
        if let Some(stripped) = text.strip_suffix(&suffix) {
            text = stripped.to_string();
        }
        if with_line {
            at = format!(" (line {}, column {})", location.line(), location.column());
        }
    }
    // serde names Rust types; people read Kubernetes types.
    for rust in ["i32", "i64", "u32", "u64"] {
        text = text.replace(&format!(", expected {rust}"), ", expected an integer");
    }
    let (mut field, mut reason) = match text.split_once(": ") {
        Some((path, message)) if !path.contains(char::is_whitespace) => {
            (path.to_string(), message.to_string())
        }
        _ => (String::new(), text),
    };
    // Only the base64 decoder of Secret data and ConfigMap binaryData capitalises its errors.
    if reason.starts_with("Invalid ") {
        reason = format!("invalid base64: {reason}");
    }
    if let Some(name) = reason
        .strip_prefix("missing field `")
        .and_then(|r| r.strip_suffix('`'))
    {
        field = if field.is_empty() {
            name.to_string()
        } else {
            format!("{field}.{name}")
        };
        reason = "required".to_string();
    }
    FieldError::new(field, format!("{reason}{at}"))
}

/// Keys in `input` that are absent from `known` (nulls excepted: an empty field is no field).
fn unknown_fields(input: &Value, known: &Value, path: &mut String, out: &mut Vec<FieldError>) {
    match (input, known) {
        (Value::Object(input), Value::Object(known)) => {
            for (key, value) in input {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                match known.get(key) {
                    Some(k) => unknown_fields(value, k, path, out),
                    None if value.is_null() => {}
                    // serde_yaml keeps `<<` as a plain key instead of merging.
                    None if key == "<<" => out.push(FieldError::new(
                        path.clone(),
                        "YAML merge keys are not supported; repeat the fields or use an alias",
                    )),
                    None => out.push(FieldError::new(path.clone(), "unknown field")),
                }
                path.truncate(len);
            }
        }
        (Value::Array(input), Value::Array(known)) => {
            for (i, (value, k)) in input.iter().zip(known).enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                unknown_fields(value, k, path, out);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

/// Counts values across the whole file; `tripped` says which bound stopped the parse.
struct Budget<'a> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Vec<Document>, PodError> {
        load_documents(text.as_bytes(), &Limits::default())
    }

    fn kinds(docs: &[Document]) -> Vec<(usize, &'static str)> {
        docs.iter()
            .map(|d| {
                let kind = match d.object {
                    Object::Pod(_) => "Pod",
                    Object::ConfigMap(_) => "ConfigMap",
                    Object::Secret(_) => "Secret",
                };
                (d.index, kind)
            })
            .collect()
    }

    const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers: [{name: c, image: busybox}]\n";

    #[test]
    fn several_documents_load_in_order_and_empty_ones_are_skipped_but_counted() {
        let text = format!(
            "---\n{POD}---\n# only a comment\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cm}}\ndata: {{a: b}}\n---\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: s}}\nstringData: {{k: v}}\n"
        );
        let docs = load(&text).unwrap();
        assert_eq!(
            kinds(&docs),
            vec![(1, "Pod"), (3, "ConfigMap"), (5, "Secret")]
        );
    }

    #[test]
    fn json_manifests_load_like_yaml() {
        let json = r#"{
	"apiVersion": "v1",
	"kind": "Pod",
	"metadata": {"name": "a", "labels": {"app": "x\/y"}},
	"spec": {"containers": [{"name": "c", "image": "busybox"}]}
}"#;
        let docs = load(json).unwrap();
        let Object::Pod(pod) = &docs[0].object else {
            panic!("not a pod")
        };
        assert_eq!(pod.metadata.labels.as_ref().unwrap()["app"], "x/y");
    }

    #[test]
    fn empty_files_hold_no_documents() {
        assert!(load("").unwrap().is_empty());
        assert!(load("# nothing\n").unwrap().is_empty());
        assert!(load("---\n---\n").unwrap().is_empty());
    }

    #[test]
    fn other_kinds_are_refused_naming_the_kind_and_document() {
        let text =
            format!("{POD}---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: d}}\n");
        assert_eq!(
            load(&text).unwrap_err().to_string(),
            "document 2: kind: unsupported kind \"Deployment\"; a manifest may hold Pod, ConfigMap and Secret objects"
        );
    }

    #[test]
    fn files_over_the_size_cap_are_refused_before_parsing() {
        let limits = Limits {
            max_bytes: 10,
            ..Limits::default()
        };
        assert_eq!(
            load_documents(POD.as_bytes(), &limits)
                .unwrap_err()
                .to_string(),
            format!(
                "manifest is {} bytes, over the limit of 10 bytes",
                POD.len()
            )
        );
    }

    #[test]
    fn nesting_deeper_than_the_limit_is_refused() {
        let deep = format!("{}{}", "[".repeat(65), "]".repeat(65));
        assert_eq!(
            load(&deep).unwrap_err().to_string(),
            "document 1: nested deeper than 64 levels"
        );
        let ok = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: x, annotations: {{a: b}}}}\nextra: {}1{}\n",
            "[".repeat(61),
            "]".repeat(61)
        );
        // 63 levels parse; the unknown field is reported rather than the depth.
        assert!(load(&ok)
            .unwrap_err()
            .to_string()
            .contains("extra: unknown field"));
    }

    #[test]
    fn billion_laughs_fails_fast_with_a_clear_error() {
        let mut bomb = String::from(
            "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
        );
        for (name, prev) in ["b", "c", "d", "e", "f", "g", "h", "i"]
            .iter()
            .zip(["a", "b", "c", "d", "e", "f", "g", "h"])
        {
            let refs = vec![format!("*{prev}"); 9].join(",");
            bomb.push_str(&format!("{name}: &{name} [{refs}]\n"));
        }
        let err = load(&bomb).unwrap_err();
        assert_eq!(
            err.to_string(),
            "document 1: more than 500000 values once YAML aliases are expanded; anchors and aliases may not inflate a manifest"
        );
    }

    #[test]
    fn wide_alias_bombs_are_stopped_by_the_value_budget() {
        // One big anchor referenced many times: few alias jumps, so serde_yaml's own
        // repetition guard does not see it, but the expanded size is 50k x 20k values.
        let mut bomb = format!("a: &a [{}]\nb: [", vec!["x"; 50_000].join(","));
        bomb.push_str(&vec!["*a"; 20_000].join(","));
        bomb.push_str("]\n");
        let err = load(&bomb).unwrap_err();
        assert!(
            matches!(err, PodError::TooManyValues { document: 1, .. }),
            "{err}"
        );
    }

    #[test]
    fn modest_aliases_are_allowed() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers:\n  - name: c\n    image: busybox\n    env: &env [{name: A, value: '1'}]\n  - name: d\n    image: busybox\n    env: *env\n";
        let docs = load(text).unwrap();
        let Object::Pod(pod) = &docs[0].object else {
            panic!("not a pod")
        };
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(spec.containers[1].env, spec.containers[0].env);
    }

    #[test]
    fn merge_keys_are_refused_rather_than_dropped() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers:\n  - &base {name: c, image: busybox}\n  - <<: *base\n    name: d\n";
        assert_eq!(
            load(text).unwrap_err().to_string(),
            "document 1: spec.containers[1].<<: YAML merge keys are not supported; repeat the fields or use an alias"
        );
    }

    #[test]
    fn duplicate_keys_are_refused_with_their_path() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers:\n  - name: c\n    image: busybox\n    image: nginx\n";
        assert_eq!(
            load(text).unwrap_err().to_string(),
            "document 1: invalid YAML: spec.containers[0]: duplicate key \"image\" at line 6 column 5"
        );
    }

    #[test]
    fn unknown_fields_are_refused_by_path() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers:\n  - name: c\n    image: busybox\n    imagePullPolicyy: Always\n    securityContext: {readOnlyRootFileSystem: true}\n";
        assert_eq!(
            load(text).unwrap_err().to_string(),
            "document 1: spec.containers[0].imagePullPolicyy: unknown field; spec.containers[0].securityContext.readOnlyRootFileSystem: unknown field"
        );
    }

    #[test]
    fn type_errors_carry_the_field_path_and_line() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers:\n  - name: c\n    image: busybox\n    ports: [{containerPort: eighty}]\n";
        assert_eq!(
            load(text).unwrap_err().to_string(),
            "document 1: spec.containers[0].ports[0].containerPort: invalid type: string \"eighty\", expected an integer (line 8, column 29)"
        );
    }

    #[test]
    fn file_modes_with_a_leading_zero_are_octal_as_in_yaml_1_1() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers: [{name: c, image: busybox}]\n  volumes:\n  - {name: s, secret: {secretName: s, defaultMode: 0640, items: [{key: k, path: k, mode: 0400}]}}\n  - {name: t, configMap: {name: c, defaultMode: 420}}\n";
        let docs = load(text).unwrap();
        let Object::Pod(pod) = &docs[0].object else {
            panic!("not a pod")
        };
        let volumes = pod.spec.as_ref().unwrap().volumes.as_ref().unwrap();
        let secret = volumes[0].secret.as_ref().unwrap();
        assert_eq!(secret.default_mode, Some(0o640));
        assert_eq!(secret.items.as_ref().unwrap()[0].mode, Some(0o400));
        assert_eq!(
            volumes[1].config_map.as_ref().unwrap().default_mode,
            Some(420)
        );
        assert_eq!(yaml11_octal("0"), None);
        assert_eq!(yaml11_octal("0800"), None);
        assert_eq!(yaml11_octal("0+7"), None);
    }

    #[test]
    fn plain_scalars_read_as_strings_where_strings_are_expected() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: a, labels: {on: true}}\nspec:\n  containers: [{name: c, image: busybox, args: [--port, 8080, true]}]\n";
        let docs = load(text).unwrap();
        let Object::Pod(pod) = &docs[0].object else {
            panic!("not a pod")
        };
        let args = pod.spec.as_ref().unwrap().containers[0]
            .args
            .clone()
            .unwrap();
        assert_eq!(args, vec!["--port", "8080", "true"]);
        assert_eq!(pod.metadata.labels.as_ref().unwrap()["on"], "true");
    }

    #[test]
    fn an_error_next_to_octal_modes_still_names_its_own_field() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers: [{name: c, image: busybox}]\n  volumes: [{name: s, secret: {secretName: s, defaultMode: 0640}}]\n  hostPID: maybe\n";
        // The first reading stops at defaultMode; the second finds hostPID, with no line.
        assert_eq!(
            load(text).unwrap_err().to_string(),
            "document 1: spec.hostPID: invalid type: string \"maybe\", expected a boolean"
        );
        let before = text
            .replace("  hostPID: maybe\n", "")
            .replace("spec:\n", "spec:\n  hostPID: maybe\n");
        assert_eq!(
            load(&before).unwrap_err().to_string(),
            "document 1: spec.hostPID: invalid type: string \"maybe\", expected a boolean (line 5, column 12)"
        );
    }

    #[test]
    fn syntax_errors_name_the_document_and_line() {
        let text = format!("{POD}---\nkey: [unclosed\n");
        let err = load(&text).unwrap_err();
        assert_eq!(err.document(), Some(2));
        assert!(
            err.to_string().starts_with("document 2: invalid YAML: "),
            "{err}"
        );
        assert!(err.to_string().contains("line"), "{err}");
    }

    #[test]
    fn documents_that_are_not_objects_or_lack_kind_are_refused() {
        assert_eq!(
            load("- a\n- b\n").unwrap_err().to_string(),
            "document 1: expected an object with apiVersion and kind, found a list"
        );
        assert_eq!(
            load("apiVersion: v1\nmetadata: {name: a}\n")
                .unwrap_err()
                .to_string(),
            "document 1: kind: required"
        );
        assert_eq!(
            load("apiVersion: v2\nkind: Pod\n").unwrap_err().to_string(),
            "document 1: apiVersion: unsupported value \"v2\" for kind Pod; expected v1"
        );
    }
}
