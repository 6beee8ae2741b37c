//! Image references with Docker's normalisation: `busybox` is
//! `docker.io/library/busybox:latest`.

use oci_client::Reference;

#[derive(Debug, thiserror::Error)]
#[error("invalid image reference {value:?}: {reason}; expected [REGISTRY/]REPOSITORY[:TAG][@sha256:DIGEST]")]
pub struct ReferenceError {
    pub value: String,
    pub reason: String,
}

pub fn parse_reference(value: &str) -> Result<Reference, ReferenceError> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(ReferenceError {
            value: value.to_string(),
            reason: "empty".into(),
        });
    }
    let reference: Reference =
        trimmed
            .parse()
            .map_err(|e: oci_client::ParseError| ReferenceError {
                value: value.to_string(),
                reason: e.to_string(),
            })?;
    if reference
        .repository()
        .bytes()
        .any(|b| b.is_ascii_uppercase())
    {
        return Err(ReferenceError {
            value: value.to_string(),
            reason: "repository names must be lowercase".into(),
        });
    }
    if let Some(digest) = reference.digest() {
        super::digest::Digest::parse(digest).map_err(|e| ReferenceError {
            value: value.to_string(),
            reason: e.to_string(),
        })?;
    }
    Ok(reference)
}

/// The names under which `name` may have been recorded: as typed, and normalised.
pub fn name_candidates(name: &str) -> Vec<String> {
    let mut out = vec![name.to_string()];
    // The full parser compiles a large regex (tens of ms per process): the common forms are
    // normalised by Docker's rules directly, the rest (digests) by the parser.
    let whole = quick_normalise(name).or_else(|| parse_reference(name).ok().map(|r| r.whole()));
    if let Some(whole) = whole {
        if whole != name {
            out.push(whole);
        }
    }
    out
}

/// Docker's normalisation for `[REGISTRY/]REPO[:TAG]` without a digest: a first component
/// with '.' or ':' or `localhost` names a registry, else docker.io (and `library/` for one
/// component); `:latest` when no tag.
fn quick_normalise(name: &str) -> Option<String> {
    if name.is_empty() || name.contains('@') || name.contains(char::is_whitespace) {
        return None;
    }
    let (first, rest) = match name.split_once('/') {
        Some((f, r)) => (f, Some(r)),
        None => (name, None),
    };
    let with_registry = match rest {
        Some(_) if first.contains(['.', ':']) || first == "localhost" => name.to_string(),
        Some(_) => format!("docker.io/{name}"),
        None => format!("docker.io/library/{name}"),
    };
    let last = with_registry.rsplit('/').next().unwrap_or("");
    Some(if last.contains(':') {
        with_registry
    } else {
        format!("{with_registry}:latest")
    })
}

/// Splits a recorded name into repository and tag (or digest) for listings.
pub fn split_name(name: &str) -> (String, String) {
    if let Some((repo, digest)) = name.split_once('@') {
        return (repo.to_string(), format!("@{digest}"));
    }
    match name.rfind(':') {
        Some(i) if !name[i + 1..].contains('/') => {
            (name[..i].to_string(), name[i + 1..].to_string())
        }
        _ => (name.to_string(), "<none>".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_normalise_like_docker() {
        assert_eq!(
            parse_reference("busybox").unwrap().whole(),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            parse_reference("quay.io/a/b:1").unwrap().whole(),
            "quay.io/a/b:1"
        );
        assert_eq!(
            parse_reference("127.0.0.1:5000/x/y:t").unwrap().registry(),
            "127.0.0.1:5000"
        );
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            parse_reference(&format!("busybox@{d}")).unwrap().digest(),
            Some(d.as_str())
        );
    }

    #[test]
    fn bad_references_are_refused_with_the_expected_form() {
        for bad in ["", "UPPER/case", "a@sha256:xyz", "a:b:c:d"] {
            let err = parse_reference(bad).unwrap_err().to_string();
            assert!(
                err.contains("expected [REGISTRY/]REPOSITORY"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn quick_normalisation_agrees_with_the_parser() {
        for name in [
            "busybox",
            "busybox:1.36",
            "example/web:1",
            "127.0.0.1:5055/example/web:1",
            "localhost/a/b",
            "quay.io/a/b:2",
            "registry:5000/x",
        ] {
            assert_eq!(
                quick_normalise(name),
                Some(parse_reference(name).unwrap().whole()),
                "{name}"
            );
        }
        assert_eq!(quick_normalise("busybox@sha256:abc"), None);
    }

    #[test]
    fn names_split_into_repository_and_tag() {
        assert_eq!(
            split_name("127.0.0.1:5000/a:v1"),
            ("127.0.0.1:5000/a".into(), "v1".into())
        );
        assert_eq!(
            split_name("127.0.0.1:5000/a"),
            ("127.0.0.1:5000/a".into(), "<none>".into())
        );
        let (_, tag) = split_name("r/a@sha256:abc");
        assert_eq!(tag, "@sha256:abc");
    }
}
