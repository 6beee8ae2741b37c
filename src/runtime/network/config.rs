//! The network configuration as libcni finds it: the lexically first `*.conflist`, `*.conf`
//! or `*.json` of the conf dir, a single-plugin file read as a list of one, validated so
//! that a bad file is refused with its path and field before any plugin runs.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::error::NetworkError;
use super::version::{SpecVersion, OLDEST_READ};

/// Extensions libcni loads from a conf dir.
const EXTENSIONS: [&str; 3] = ["conf", "conflist", "json"];

/// One network: a chain of plugins, run in order on ADD and in reverse on DEL.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkConfig {
    /// The file it came from (for error messages and `inspect`).
    pub file: PathBuf,
    pub name: String,
    pub cni_version: String,
    pub disable_check: bool,
    pub disable_gc: bool,
    pub plugins: Vec<PluginConfig>,
    /// The list as JSON: what an attachment record keeps so DEL runs the same chain.
    pub raw: Value,
}

/// One plugin of the chain, with its config object as written.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginConfig {
    pub plugin_type: String,
    /// Capabilities the plugin declares with `true` (`portMappings`, `bandwidth`, `dns`, ...).
    pub capabilities: BTreeSet<String>,
    pub raw: Map<String, Value>,
}

/// The config file libcni would pick in `dir`: the lexically first with a known extension.
/// None when the dir is missing or has none.
pub fn find_config_file(dir: &Path) -> Result<Option<PathBuf>, NetworkError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(NetworkError::ConfigDir {
                dir: dir.to_path_buf(),
                source,
            })
        }
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| NetworkError::ConfigDir {
            dir: dir.to_path_buf(),
            source,
        })?;
        let path = entry.path();
        let known = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| EXTENSIONS.contains(&e));
        // A symlink to a file counts, as with libcni's stat.
        if known && path.is_file() {
            names.push(entry.file_name());
        }
    }
    names.sort();
    Ok(names.first().map(|n| dir.join(n)))
}

/// Reads and validates `path`.
pub fn load_config_file(path: &Path) -> Result<NetworkConfig, NetworkError> {
    let bytes = std::fs::read(path).map_err(|source| NetworkError::ConfigRead {
        path: path.to_path_buf(),
        source,
    })?;
    parse_config(path, &bytes)
}

/// Parses a conf file's bytes; `path` chooses list or single-plugin reading by its
/// extension and names the file in errors.
pub fn parse_config(path: &Path, bytes: &[u8]) -> Result<NetworkConfig, NetworkError> {
    let value: Value =
        serde_json::from_slice(bytes).map_err(|source| NetworkError::ConfigSyntax {
            path: path.to_path_buf(),
            source,
        })?;
    let is_list = path.extension().is_some_and(|e| e == "conflist");
    let list = if is_list {
        value
    } else {
        single_as_list(path, value)?
    };
    parse_list(path, list)
}

/// A `.conf` file is one plugin; libcni runs it as a list of one with the same name and
/// version.
fn single_as_list(path: &Path, value: Value) -> Result<Value, NetworkError> {
    let object = as_object(path, "", &value)?;
    let mut list = Map::new();
    for key in ["name", "cniVersion", "disableCheck", "disableGC"] {
        if let Some(v) = object.get(key) {
            list.insert(key.to_string(), v.clone());
        }
    }
    list.insert("plugins".into(), Value::Array(vec![value]));
    Ok(Value::Object(list))
}

/// Validates a list and builds its typed view; `raw` keeps the list as given.
pub fn parse_list(path: &Path, raw: Value) -> Result<NetworkConfig, NetworkError> {
    let field_error = |field: &str, reason: String| NetworkError::ConfigField {
        path: path.to_path_buf(),
        field: field.to_string(),
        reason,
    };
    let list = as_object(path, "", &raw)?;
    let name = required_string(path, list, "name", "")?;
    check_network_name(&name).map_err(|reason| field_error("name", reason.into()))?;
    let cni_version = required_string(path, list, "cniVersion", "")?;
    match SpecVersion::parse(&cni_version) {
        None => {
            return Err(field_error(
                "cniVersion",
                format!("{cni_version:?} is not a version like 1.0.0"),
            ))
        }
        Some(v) if v < OLDEST_READ => {
            return Err(field_error(
                "cniVersion",
                format!(
                    "{cni_version} is older than {OLDEST_READ}, the oldest version whose \
                     results layerlet reads: use 0.4.0 or 1.0.0"
                ),
            ))
        }
        Some(_) => {}
    }
    let disable_check = optional_bool(path, list, "disableCheck")?;
    let disable_gc = optional_bool(path, list, "disableGC")?;
    let Some(Value::Array(items)) = list.get("plugins") else {
        return Err(field_error(
            "plugins",
            "required: an array of plugin objects".into(),
        ));
    };
    if items.is_empty() {
        return Err(field_error(
            "plugins",
            "empty: name at least one plugin".into(),
        ));
    }
    let mut plugins = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        plugins.push(parse_plugin(path, &format!("plugins[{i}]"), item)?);
    }
    Ok(NetworkConfig {
        file: path.to_path_buf(),
        name,
        cni_version,
        disable_check,
        disable_gc,
        plugins,
        raw,
    })
}

fn parse_plugin(path: &Path, at: &str, value: &Value) -> Result<PluginConfig, NetworkError> {
    let object = as_object(path, at, value)?;
    let plugin_type = required_string(path, object, "type", at)?;
    // The type is a file name looked up in the plugin dirs: it must not walk out of them.
    if plugin_type.contains('/') || plugin_type == "." || plugin_type == ".." {
        return Err(NetworkError::ConfigField {
            path: path.to_path_buf(),
            field: format!("{at}.type"),
            reason: format!("{plugin_type:?} must be a plain plugin name, not a path"),
        });
    }
    let mut capabilities = BTreeSet::new();
    match object.get("capabilities") {
        None | Some(Value::Null) => {}
        Some(Value::Object(caps)) => {
            for (name, on) in caps {
                match on {
                    Value::Bool(true) => {
                        capabilities.insert(name.clone());
                    }
                    Value::Bool(false) => {}
                    _ => {
                        return Err(NetworkError::ConfigField {
                            path: path.to_path_buf(),
                            field: format!("{at}.capabilities.{name}"),
                            reason: "must be true or false".into(),
                        })
                    }
                }
            }
        }
        Some(_) => {
            return Err(NetworkError::ConfigField {
                path: path.to_path_buf(),
                field: format!("{at}.capabilities"),
                reason: "must be an object of capability names to true or false".into(),
            })
        }
    }
    Ok(PluginConfig {
        plugin_type,
        capabilities,
        raw: object.clone(),
    })
}

fn as_object<'a>(
    path: &Path,
    at: &str,
    value: &'a Value,
) -> Result<&'a Map<String, Value>, NetworkError> {
    value.as_object().ok_or_else(|| NetworkError::ConfigField {
        path: path.to_path_buf(),
        field: if at.is_empty() {
            "(top level)".into()
        } else {
            at.into()
        },
        reason: "must be a JSON object".into(),
    })
}

fn join_field(at: &str, key: &str) -> String {
    if at.is_empty() {
        key.to_string()
    } else {
        format!("{at}.{key}")
    }
}

fn required_string(
    path: &Path,
    object: &Map<String, Value>,
    key: &str,
    at: &str,
) -> Result<String, NetworkError> {
    match object.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Value::String(_)) | None => Err(NetworkError::ConfigField {
            path: path.to_path_buf(),
            field: join_field(at, key),
            reason: "required".into(),
        }),
        Some(_) => Err(NetworkError::ConfigField {
            path: path.to_path_buf(),
            field: join_field(at, key),
            reason: "must be a string".into(),
        }),
    }
}

fn optional_bool(
    path: &Path,
    object: &Map<String, Value>,
    key: &str,
) -> Result<bool, NetworkError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(NetworkError::ConfigField {
            path: path.to_path_buf(),
            field: key.into(),
            reason: "must be true or false".into(),
        }),
    }
}

/// libcni's rule for network names: they become parts of file and chain names.
fn check_network_name(name: &str) -> Result<(), &'static str> {
    let mut bytes = name.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphanumeric());
    let rest_ok = bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if first_ok && rest_ok {
        Ok(())
    } else {
        Err("must start with a letter or digit and contain only letters, digits, '_', '.' and '-'")
    }
}

/// The binary of `plugin`: the first regular file of that name in `dirs`, in order.
pub fn find_plugin(plugin: &str, dirs: &[PathBuf]) -> Option<PathBuf> {
    dirs.iter()
        .map(|d| d.join(plugin))
        .find(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(err: NetworkError) -> (String, String) {
        match err {
            NetworkError::ConfigField { field, reason, .. } => (field, reason),
            other => panic!("expected a field error, got {other}"),
        }
    }

    const LIST: &str = r#"{
        "cniVersion": "1.0.0", "name": "net1",
        "plugins": [
            {"type": "bridge", "bridge": "br0", "ipam": {"type": "host-local"}},
            {"type": "portmap", "capabilities": {"portMappings": true, "bandwidth": false}}
        ]}"#;

    #[test]
    fn a_conflist_gives_its_plugins_in_order_with_their_true_capabilities() {
        let net = parse_config(Path::new("/x/10-net.conflist"), LIST.as_bytes()).unwrap();
        assert_eq!(net.name, "net1");
        assert_eq!(net.cni_version, "1.0.0");
        let types: Vec<&str> = net.plugins.iter().map(|p| p.plugin_type.as_str()).collect();
        assert_eq!(types, ["bridge", "portmap"]);
        assert!(net.plugins[0].capabilities.is_empty());
        assert_eq!(
            net.plugins[1].capabilities.iter().collect::<Vec<_>>(),
            ["portMappings"]
        );
        assert_eq!(net.plugins[0].raw["bridge"], "br0");
    }

    #[test]
    fn a_single_plugin_conf_is_read_as_a_list_of_one() {
        let conf = r#"{"cniVersion": "0.4.0", "name": "single", "type": "ptp",
                       "ipam": {"type": "host-local"}}"#;
        for name in ["10-single.conf", "10-single.json"] {
            let net = parse_config(&Path::new("/x").join(name), conf.as_bytes()).unwrap();
            assert_eq!(net.name, "single");
            assert_eq!(net.cni_version, "0.4.0");
            assert_eq!(net.plugins.len(), 1);
            assert_eq!(net.plugins[0].plugin_type, "ptp");
            assert_eq!(net.raw["plugins"][0]["ipam"]["type"], "host-local");
        }
    }

    #[test]
    fn bad_configs_name_the_field_and_the_problem() {
        let cases: &[(&str, &str, &str)] = &[
            (r#"[]"#, "(top level)", "must be a JSON object"),
            (r#"{"cniVersion":"1.0.0","plugins":[{"type":"x"}]}"#, "name", "required"),
            (
                r#"{"cniVersion":"1.0.0","name":"a/b","plugins":[{"type":"x"}]}"#,
                "name",
                "must start with a letter or digit and contain only letters, digits, '_', '.' and '-'",
            ),
            (r#"{"name":"n","plugins":[{"type":"x"}]}"#, "cniVersion", "required"),
            (
                r#"{"cniVersion":"one","name":"n","plugins":[{"type":"x"}]}"#,
                "cniVersion",
                "\"one\" is not a version like 1.0.0",
            ),
            (r#"{"cniVersion":"1.0.0","name":"n"}"#, "plugins", "required: an array of plugin objects"),
            (r#"{"cniVersion":"1.0.0","name":"n","plugins":[]}"#, "plugins", "empty: name at least one plugin"),
            (r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"x"},{}]}"#, "plugins[1].type", "required"),
            (r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":7}]}"#, "plugins[0].type", "must be a string"),
            (
                r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"../sh"}]}"#,
                "plugins[0].type",
                "\"../sh\" must be a plain plugin name, not a path",
            ),
            (
                r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"x","capabilities":{"dns":"yes"}}]}"#,
                "plugins[0].capabilities.dns",
                "must be true or false",
            ),
        ];
        for (text, field, reason) in cases {
            let err =
                parse_config(Path::new("/etc/cni/net.d/a.conflist"), text.as_bytes()).unwrap_err();
            assert!(err
                .to_string()
                .starts_with("CNI config /etc/cni/net.d/a.conflist: "));
            assert_eq!(
                field_of(err),
                (field.to_string(), reason.to_string()),
                "{text}"
            );
        }
    }

    #[test]
    fn configs_older_than_0_3_are_refused() {
        let text = r#"{"cniVersion":"0.2.0","name":"n","plugins":[{"type":"x"}]}"#;
        let (field, reason) =
            field_of(parse_config(Path::new("/a.conflist"), text.as_bytes()).unwrap_err());
        assert_eq!(field, "cniVersion");
        assert!(reason.contains("older than 0.3.0"), "{reason}");
    }

    #[test]
    fn malformed_json_names_the_file() {
        let err = parse_config(Path::new("/etc/cni/net.d/a.conflist"), b"{\"name\":").unwrap_err();
        assert!(matches!(err, NetworkError::ConfigSyntax { .. }));
        assert!(err
            .to_string()
            .starts_with("CNI config /etc/cni/net.d/a.conflist: not valid JSON"));
    }

    #[test]
    fn the_lexically_first_known_file_is_picked() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(find_config_file(&dir.path().join("missing")).unwrap(), None);
        assert_eq!(find_config_file(dir.path()).unwrap(), None);
        for name in [
            "99-last.conflist",
            "20-b.conf",
            "README",
            "10-a.json.bak",
            "15-c.json",
        ] {
            std::fs::write(dir.path().join(name), "{}").unwrap();
        }
        std::fs::create_dir(dir.path().join("05-dir.conf")).unwrap();
        assert_eq!(
            find_config_file(dir.path()).unwrap(),
            Some(dir.path().join("15-c.json"))
        );
    }

    #[test]
    fn plugins_are_searched_in_the_dirs_in_order() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        std::fs::write(b.path().join("bridge"), "").unwrap();
        std::fs::create_dir(a.path().join("portmap")).unwrap();
        std::fs::write(b.path().join("portmap"), "").unwrap();
        let dirs = vec![a.path().to_path_buf(), b.path().to_path_buf()];
        assert_eq!(find_plugin("bridge", &dirs), Some(b.path().join("bridge")));
        assert_eq!(
            find_plugin("portmap", &dirs),
            Some(b.path().join("portmap"))
        );
        assert_eq!(find_plugin("ptp", &dirs), None);
        std::fs::write(a.path().join("bridge"), "").unwrap();
        assert_eq!(find_plugin("bridge", &dirs), Some(a.path().join("bridge")));
    }
}
