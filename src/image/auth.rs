//! Registry credentials from a Docker-style `config.json` (`auths.<registry>.auth` is
//! base64 of `user:password`; `username`/`password` fields are read too).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("read credentials file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("credentials file {path} is not valid JSON: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("credentials file {path}: auths.{registry}.auth is not base64 of user:password")]
    BadAuth { path: PathBuf, registry: String },
}

#[derive(Debug, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
}

#[derive(Debug, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

/// The config file to read: an explicit path, else `$DOCKER_CONFIG/config.json`, else
/// `~/.docker/config.json`.
pub fn default_auth_file() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".docker/config.json"))
}

fn keys_for(registry: &str) -> Vec<String> {
    let mut keys = vec![
        registry.to_string(),
        format!("https://{registry}"),
        format!("http://{registry}"),
        format!("https://{registry}/v1/"),
        format!("https://{registry}/v2/"),
    ];
    if matches!(
        registry,
        "docker.io" | "index.docker.io" | "registry-1.docker.io"
    ) {
        keys.push("https://index.docker.io/v1/".to_string());
        keys.push("docker.io".to_string());
        keys.push("index.docker.io".to_string());
        keys.push("registry-1.docker.io".to_string());
    }
    keys
}

/// Credentials for `registry` (host[:port]), or None for anonymous access. A missing file
/// means anonymous; a malformed one is an error naming it.
pub fn credentials_for(file: &Path, registry: &str) -> Result<Option<Credentials>, AuthError> {
    let text = match std::fs::read(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(AuthError::Read {
                path: file.to_path_buf(),
                source,
            })
        }
    };
    let config: ConfigFile = serde_json::from_slice(&text).map_err(|source| AuthError::Json {
        path: file.to_path_buf(),
        source,
    })?;
    for key in keys_for(registry) {
        let Some(entry) = config.auths.get(&key) else {
            continue;
        };
        if let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
            let bad = || AuthError::BadAuth {
                path: file.to_path_buf(),
                registry: key.clone(),
            };
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .map_err(|_| bad())?;
            let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
            let (username, password) = decoded.split_once(':').ok_or_else(bad)?;
            return Ok(Some(Credentials {
                username: username.to_string(),
                password: password.to_string(),
            }));
        }
        if let (Some(username), Some(password)) = (&entry.username, &entry.password) {
            return Ok(Some(Credentials {
                username: username.clone(),
                password: password.clone(),
            }));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_found_by_host_and_by_url_forms() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.json");
        std::fs::write(
            &file,
            r#"{"auths":{"127.0.0.1:5000":{"auth":"dXNlcjpwYXNzOndvcmQ="},
                "https://index.docker.io/v1/":{"username":"d","password":"p"}}}"#,
        )
        .unwrap();
        let c = credentials_for(&file, "127.0.0.1:5000").unwrap().unwrap();
        assert_eq!(
            (c.username.as_str(), c.password.as_str()),
            ("user", "pass:word")
        );
        let d = credentials_for(&file, "docker.io").unwrap().unwrap();
        assert_eq!(d.username, "d");
        assert!(credentials_for(&file, "quay.io").unwrap().is_none());
        assert!(credentials_for(&dir.path().join("missing"), "x")
            .unwrap()
            .is_none());
    }

    #[test]
    fn malformed_credentials_file_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.json");
        std::fs::write(&file, "{not json").unwrap();
        let err = credentials_for(&file, "x").unwrap_err().to_string();
        assert!(err.contains("config.json"), "{err}");
        std::fs::write(&file, r#"{"auths":{"x":{"auth":"!!!"}}}"#).unwrap();
        let err = credentials_for(&file, "x").unwrap_err().to_string();
        assert!(err.contains("auths.x.auth"), "{err}");
    }
}
