//! Value rules for names, in Kubernetes' terms: DNS labels and subdomains, port and
//! environment variable names, label keys and values, keys of ConfigMap data.

use std::net::IpAddr;

pub(super) fn required(value: &str) -> Result<(), String> {
    if value.is_empty() {
        Err("required".to_string())
    } else {
        Ok(())
    }
}

fn is_label_part(s: &str) -> bool {
    let bytes = s.as_bytes();
    let edge = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    !s.is_empty()
        && bytes.first().is_some_and(edge)
        && bytes.last().is_some_and(edge)
        && bytes.iter().all(|b| edge(b) || *b == b'-')
}

/// DNS-1123 label: container, volume and namespace names.
pub fn dns_label(value: &str) -> Result<(), String> {
    if value.len() <= 63 && is_label_part(value) {
        Ok(())
    } else {
        Err(format!(
            "invalid name {value:?}: must be a DNS-1123 label (at most 63 characters: lowercase letters, digits and '-', starting and ending with a letter or digit)"
        ))
    }
}

/// DNS-1123 subdomain: pod, ConfigMap, Secret and claim names.
pub fn dns_subdomain(value: &str) -> Result<(), String> {
    if value.len() <= 253 && value.split('.').all(is_label_part) {
        Ok(())
    } else {
        Err(format!(
            "invalid name {value:?}: must be a DNS-1123 subdomain (at most 253 characters: lowercase letters, digits, '-' and '.', each part starting and ending with a letter or digit)"
        ))
    }
}

/// IANA service name: container port names (and probe ports given by name).
pub fn iana_svc_name(value: &str) -> Result<(), String> {
    let bytes = value.as_bytes();
    let ok = (1..=15).contains(&value.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.iter().any(|b| b.is_ascii_lowercase())
        && !value.starts_with('-')
        && !value.ends_with('-')
        && !value.contains("--");
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid port name {value:?}: at most 15 characters: lowercase letters, digits and '-', with at least one letter, no '--' and no '-' at either end"
        ))
    }
}

/// Environment variable names (and envFrom prefixes), as Kubernetes 1.33 accepts them.
pub fn env_var_name(value: &str) -> Result<(), String> {
    let mut bytes = value.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || matches!(b, b'-' | b'.' | b'_'));
    if first_ok && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_')) {
        Ok(())
    } else {
        Err(format!(
            "invalid name {value:?}: letters, digits, '_', '-' and '.', not starting with a digit"
        ))
    }
}

/// Keys of ConfigMap and Secret data (and so file names in their volumes).
pub fn config_map_key(value: &str) -> Result<(), String> {
    let ok = (1..=253).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
        && value != "."
        && !value.starts_with("..");
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid key {value:?}: at most 253 characters: letters, digits, '-', '_' and '.', not '.' and not starting with '..'"
        ))
    }
}

/// Label and annotation keys: `[prefix/]name`, prefix a DNS subdomain.
pub(super) fn qualified_name(value: &str) -> Result<(), String> {
    let (prefix, name) = match value.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, value),
    };
    let prefix_ok = prefix.is_none_or(|p| dns_subdomain(p).is_ok());
    if prefix_ok && !name.is_empty() && label_value(name).is_ok() {
        Ok(())
    } else {
        Err(format!(
            "invalid key {value:?}: an optional DNS subdomain prefix and '/', then at most 63 characters: letters, digits, '-', '_' and '.', starting and ending with a letter or digit"
        ))
    }
}

pub(super) fn label_value(value: &str) -> Result<(), String> {
    let bytes = value.as_bytes();
    let edge = |b: &u8| b.is_ascii_alphanumeric();
    let ok = value.is_empty()
        || (value.len() <= 63
            && bytes.first().is_some_and(edge)
            && bytes.last().is_some_and(edge)
            && bytes
                .iter()
                .all(|b| edge(b) || matches!(b, b'-' | b'_' | b'.')));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid value {value:?}: at most 63 characters: letters, digits, '-', '_' and '.', starting and ending with a letter or digit"
        ))
    }
}

pub(super) fn sysctl_name(value: &str) -> Result<(), String> {
    let segment_ok = |s: &str| {
        let b = s.as_bytes();
        let edge = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
        b.first().is_some_and(edge)
            && b.last().is_some_and(edge)
            && b.iter().all(|c| edge(c) || matches!(c, b'-' | b'_'))
    };
    if value.len() <= 253 && value.split(['.', '/']).all(segment_ok) {
        Ok(())
    } else {
        Err(format!("invalid sysctl name {value:?}"))
    }
}

pub(super) fn http_header_name(value: &str) -> Result<(), String> {
    if !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        Ok(())
    } else {
        Err(format!(
            "invalid header name {value:?}: letters, digits and '-'"
        ))
    }
}

pub(super) fn ip(value: &str) -> Result<(), String> {
    value
        .parse::<IpAddr>()
        .map(|_| ())
        .map_err(|_| format!("invalid IP address {value:?}"))
}

pub(super) fn uid(value: &str) -> Result<(), String> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid uid {value:?}: at most 64 letters, digits and '-' (a UUID); leave it out to have one derived from the name"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels_are_lowercase_alphanumerics_and_dashes_up_to_63() {
        for ok in ["a", "web-1", "0abc", &"a".repeat(63)] {
            assert!(dns_label(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "a-", "Web", "a_b", "a.b", &"a".repeat(64)] {
            assert!(dns_label(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dns_subdomains_allow_dots_up_to_253() {
        for ok in ["a.b", "web-1.example.com", &"a".repeat(253)] {
            assert!(dns_subdomain(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".a", "a..b", "a.", "A.b", "..", &"a".repeat(254)] {
            assert!(dns_subdomain(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn port_names_are_iana_service_names() {
        for ok in ["http", "metrics-1", "h2c", "a"] {
            assert!(iana_svc_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "8080",
            "-http",
            "http-",
            "a--b",
            "HTTP",
            "averyveryverylongname",
        ] {
            assert!(iana_svc_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn env_var_names_follow_kubernetes_rules() {
        for ok in ["PATH", "_x", "my.var", "-dash", "a1"] {
            assert!(env_var_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "1X", "A=B", "A B", "é"] {
            assert!(env_var_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn config_map_keys_may_not_escape_their_directory() {
        for ok in ["a.conf", "_x", "a..b", ".hidden"] {
            assert!(config_map_key(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "..data", "a/b", "a b"] {
            assert!(config_map_key(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn label_keys_may_have_a_dns_prefix() {
        assert!(qualified_name("app.kubernetes.io/name").is_ok());
        assert!(qualified_name("app").is_ok());
        assert!(qualified_name("Example.com/x").is_err());
        assert!(qualified_name("a/").is_err());
        assert!(label_value("").is_ok());
        assert!(label_value("v1.2_x").is_ok());
        assert!(label_value("-x").is_err());
    }
}
