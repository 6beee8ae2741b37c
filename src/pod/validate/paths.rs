//! Value rules for paths: absolute and relative file paths without backsteps, and the
//! downward API field paths env and volumes may name.

use super::names::qualified_name;

fn has_backstep(path: &str) -> bool {
    path.split('/').any(|part| part == "..")
}

/// Container mount paths and host paths.
pub(super) fn absolute_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        Err("required".to_string())
    } else if !path.starts_with('/') {
        Err(format!("{path:?} must be an absolute path"))
    } else if has_backstep(path) {
        Err(format!("{path:?} must not contain '..'"))
    } else {
        Ok(())
    }
}

/// subPath, volume item paths, seccomp profile files: inside some root, never out of it.
/// A file path inside a configMap, secret or downwardAPI volume: relative, no `..`, and not
/// starting with `..`, which the atomic writer's own entries (`..data`) use.
pub(super) fn volume_file_path(path: &str) -> Result<(), String> {
    relative_path(path)?;
    if path.starts_with("..") {
        return Err(format!("{path:?} must not start with '..'"));
    }
    Ok(())
}

pub(super) fn relative_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        Err("required".to_string())
    } else if path.starts_with('/') {
        Err(format!("{path:?} must be a relative path"))
    } else if has_backstep(path) {
        Err(format!("{path:?} must not contain '..'"))
    } else {
        Ok(())
    }
}

/// `metadata.labels['app']` -> Some(("metadata.labels", "app")).
fn subscripted(path: &str) -> Option<(&str, &str)> {
    let (base, rest) = path.split_once("['")?;
    let key = rest.strip_suffix("']")?;
    Some((base, key))
}

fn field_path(path: &str, plain: &[&str], subscriptable: &[&str]) -> Result<(), String> {
    if plain.contains(&path) {
        return Ok(());
    }
    if let Some((base, key)) = subscripted(path) {
        if subscriptable.contains(&base) {
            return qualified_name(key);
        }
    }
    Err(format!(
        "unsupported field path {path:?}; expected one of {}, {}",
        plain.join(", "),
        subscriptable
            .iter()
            .map(|s| format!("{s}['KEY']"))
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

const SUBSCRIPTABLE: &[&str] = &["metadata.labels", "metadata.annotations"];

pub(super) fn env_field_path(path: &str) -> Result<(), String> {
    field_path(
        path,
        &[
            "metadata.name",
            "metadata.namespace",
            "metadata.uid",
            "spec.nodeName",
            "spec.serviceAccountName",
            "status.hostIP",
            "status.hostIPs",
            "status.podIP",
            "status.podIPs",
        ],
        SUBSCRIPTABLE,
    )
}

pub(super) fn volume_field_path(path: &str) -> Result<(), String> {
    field_path(
        path,
        &[
            "metadata.name",
            "metadata.namespace",
            "metadata.uid",
            "metadata.labels",
            "metadata.annotations",
        ],
        SUBSCRIPTABLE,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_paths_are_checked_against_what_the_downward_api_offers() {
        assert!(env_field_path("status.hostIP").is_ok());
        assert!(env_field_path("metadata.labels['app.kubernetes.io/name']").is_ok());
        assert!(env_field_path("metadata.labels").is_err());
        assert!(volume_field_path("metadata.labels").is_ok());
        assert!(volume_field_path("spec.nodeName").is_err());
    }

    #[test]
    fn paths_are_checked_for_backsteps_and_anchoring() {
        assert!(absolute_path("/data").is_ok());
        assert!(absolute_path("data").is_err());
        assert!(absolute_path("/data/../etc").is_err());
        assert!(absolute_path("/data/..x").is_ok());
        assert!(relative_path("a/b").is_ok());
        assert!(relative_path("/a").is_err());
        assert!(relative_path("../a").is_err());
    }
}
