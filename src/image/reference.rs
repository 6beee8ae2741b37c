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
    if let Ok(r) = parse_reference(name) {
        let whole = r.whole();
        if whole != name {
            out.push(whole);
        }
    }
    out
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
