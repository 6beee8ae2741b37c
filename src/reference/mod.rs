//! Image references (`busybox`, `quay.io/a/b:1`, `registry:5000/x@sha256:...`), parsed once
//! into [`ImageRef`] with Docker's normalisation: `busybox` is
//! `docker.io/library/busybox:latest`.
//!
//! It sits below `pod` and `image`, which both use it: a pod's `image` field is a parsed
//! reference from validation on, and pulls and store lookups take it as it is.

mod parse;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use parse::Parts;

/// A reference that does not follow the grammar, with the text as given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid image reference {reference:?}: {problem}; expected [REGISTRY/]REPOSITORY[:TAG][@sha256:DIGEST]")]
pub struct ReferenceError {
    pub reference: String,
    pub problem: Problem,
}

/// What is wrong with a reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("empty")]
    Empty,
    #[error("registry {0:?} is not a host name or address with an optional :PORT")]
    Registry(String),
    #[error("repository names must be lowercase")]
    Uppercase,
    #[error("repository path component {0:?} must be runs of lowercase letters and digits joined by '.', '_', '__' or '-'")]
    PathComponent(String),
    #[error("repository name is {0} characters, more than {max}", max = parse::MAX_REPOSITORY_LEN)]
    TooLong(usize),
    #[error(
        "tag {0:?} must be 1 to 128 letters, digits, '_', '.' or '-', not starting with '.' or '-'"
    )]
    Tag(String),
    #[error("digest {0:?} must be sha256: followed by 64 lowercase hex digits")]
    Digest(String),
}

/// A valid image reference: the text as written (what status, events and `ps` show) and
/// its normalised parts (what registries and the store are asked). Two references are equal
/// when they were written the same way, as a changed spelling in a pod changes its spec.
///
/// (De)serializes as the text as written, which is how pod records stored it before the
/// type existed.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    written: String,
    parts: Parts,
}

impl ImageRef {
    /// Parses `text`; whitespace around it is ignored.
    pub fn parse(text: &str) -> Result<ImageRef, ReferenceError> {
        let written = text.trim();
        let parts = parse::parse(written).map_err(|problem| ReferenceError {
            reference: text.to_string(),
            problem,
        })?;
        Ok(ImageRef {
            written: written.to_string(),
            parts,
        })
    }

    /// The reference as written.
    pub fn as_str(&self) -> &str {
        &self.written
    }

    /// `docker.io` for Docker Hub, else the host (and port) written.
    pub fn registry(&self) -> &str {
        &self.parts.registry
    }

    /// With `library/` for Docker Hub's official images.
    pub fn repository(&self) -> &str {
        &self.parts.repository
    }

    /// `latest` when the reference names neither a tag nor a digest.
    pub fn tag(&self) -> Option<&str> {
        self.parts.tag.as_deref()
    }

    /// `sha256:<hex>`.
    pub fn digest(&self) -> Option<&str> {
        self.parts.digest.as_deref()
    }

    /// Whether the reference names a moving target: `:latest` (written or implied) and no
    /// digest. Kubernetes pulls such images by default every time.
    pub fn is_latest(&self) -> bool {
        self.digest().is_none() && self.tag() == Some(parse::DEFAULT_TAG)
    }

    /// The whole normalised name, `REGISTRY/REPOSITORY[:TAG][@DIGEST]`: the name images are
    /// recorded under.
    pub fn normalised(&self) -> String {
        let mut whole = format!("{}/{}", self.registry(), self.repository());
        if let Some(tag) = self.tag() {
            whole.push(':');
            whole.push_str(tag);
        }
        if let Some(digest) = self.digest() {
            whole.push('@');
            whole.push_str(digest);
        }
        whole
    }

    /// `REGISTRY/REPOSITORY@DIGEST`: how containerd-backed kubelets report a container's
    /// `imageID`, with the digest the registry serves the image under.
    pub fn repo_digest(&self, digest: &str) -> String {
        format!("{}/{}@{digest}", self.registry(), self.repository())
    }

    /// The names an image may be recorded under: as written, then normalised.
    pub fn lookup_names(&self) -> Vec<String> {
        let normalised = self.normalised();
        if normalised == self.written {
            vec![normalised]
        } else {
            vec![self.written.clone(), normalised]
        }
    }
}

/// The reference registry requests are made with.
impl From<&ImageRef> for oci_client::Reference {
    fn from(image: &ImageRef) -> oci_client::Reference {
        let registry = image.registry().to_string();
        let repository = image.repository().to_string();
        match (image.tag(), image.digest()) {
            (Some(tag), Some(digest)) => oci_client::Reference::with_tag_and_digest(
                registry,
                repository,
                tag.to_string(),
                digest.to_string(),
            ),
            (None, Some(digest)) => {
                oci_client::Reference::with_digest(registry, repository, digest.to_string())
            }
            (tag, None) => oci_client::Reference::with_tag(
                registry,
                repository,
                tag.unwrap_or(parse::DEFAULT_TAG).to_string(),
            ),
        }
    }
}

impl FromStr for ImageRef {
    type Err = ReferenceError;

    fn from_str(text: &str) -> Result<ImageRef, ReferenceError> {
        ImageRef::parse(text)
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.written)
    }
}

/// As the text written, quoted: messages that show `{:?}` read as they did with a string.
impl fmt::Debug for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.written, f)
    }
}

impl Serialize for ImageRef {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.written)
    }
}

impl<'de> Deserialize<'de> for ImageRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ImageRef, D::Error> {
        let text = String::deserialize(deserializer)?;
        ImageRef::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> ImageRef {
        ImageRef::parse(text).unwrap()
    }

    fn problem(text: &str) -> Problem {
        ImageRef::parse(text).unwrap_err().problem
    }

    fn digest() -> String {
        format!("sha256:{}", "a".repeat(64))
    }

    #[test]
    fn short_names_normalise_like_docker() {
        let d = digest();
        for (written, normalised) in [
            ("busybox", "docker.io/library/busybox:latest".to_string()),
            ("busybox:1.36", "docker.io/library/busybox:1.36".into()),
            ("example/web:1", "docker.io/example/web:1".into()),
            (
                "index.docker.io/busybox",
                "docker.io/library/busybox:latest".into(),
            ),
            ("docker.io/a/b/c", "docker.io/a/b/c:latest".into()),
            ("localhost/a/b", "localhost/a/b:latest".into()),
            ("localhost:5000/a", "localhost:5000/a:latest".into()),
            ("registry:5000/x", "registry:5000/x:latest".into()),
            (
                "127.0.0.1:5055/example/web:1",
                "127.0.0.1:5055/example/web:1".into(),
            ),
            ("quay.io/a/b:2", "quay.io/a/b:2".into()),
            ("test.com:5000", "docker.io/library/test.com:5000".into()),
            ("a__b-c_d/e--f.g", "docker.io/a__b-c_d/e--f.g:latest".into()),
            (
                &format!("busybox@{d}"),
                format!("docker.io/library/busybox@{d}"),
            ),
            (&format!("q.io/b:1@{d}"), format!("q.io/b:1@{d}")),
        ] {
            assert_eq!(parsed(written).normalised(), normalised, "{written}");
            // The registry client's own parser, which pulls used before, agrees.
            let theirs: oci_client::Reference = written.parse().unwrap();
            assert_eq!(theirs.whole(), normalised, "{written}");
        }
    }

    #[test]
    fn parts_are_split_as_registries_expect_them() {
        let r = parsed("127.0.0.1:5000/x/y:t");
        assert_eq!(
            (r.registry(), r.repository(), r.tag(), r.digest()),
            ("127.0.0.1:5000", "x/y", Some("t"), None)
        );
        let d = digest();
        let r = parsed(&format!("busybox@{d}"));
        assert_eq!((r.tag(), r.digest()), (None, Some(d.as_str())));
    }

    #[test]
    fn conversion_for_registry_calls_matches_the_registry_client_parser() {
        let d = digest();
        for written in [
            "busybox".to_string(),
            "quay.io/a/b:1".into(),
            "127.0.0.1:5000/x/y:t".into(),
            format!("busybox@{d}"),
            format!("q.io/b:1@{d}"),
        ] {
            let ours = oci_client::Reference::from(&parsed(&written));
            let theirs: oci_client::Reference = written.parse().unwrap();
            assert_eq!(ours, theirs, "{written}");
        }
    }

    #[test]
    fn bad_references_are_refused_with_the_expected_form() {
        let d = digest();
        let cases = [
            ("", Problem::Empty),
            ("   ", Problem::Empty),
            ("UPPER/case", Problem::Uppercase),
            ("UPPER/Case::bad", Problem::Uppercase),
            ("a:b:c:d", Problem::PathComponent("a:b:c".into())),
            ("a//b", Problem::PathComponent(String::new())),
            ("busy box", Problem::PathComponent("busy box".into())),
            ("foo_bar.com/x", Problem::Registry("foo_bar.com".into())),
            ("host:port/x", Problem::Registry("host:port".into())),
            ("busybox:", Problem::Tag(String::new())),
            ("busybox:-1", Problem::Tag("-1".into())),
            ("a@sha256:xyz", Problem::Digest("sha256:xyz".into())),
            ("a@", Problem::Digest(String::new())),
            (
                &format!("a@sha512:{}", "a".repeat(128)),
                Problem::Digest(format!("sha512:{}", "a".repeat(128))),
            ),
            (&format!("a@{d}@{d}"), Problem::Digest(format!("{d}@{d}"))),
            (&"a".repeat(250), Problem::TooLong(258)),
        ];
        for (text, expected) in cases {
            assert_eq!(problem(text), expected, "{text}");
            let message = ImageRef::parse(text).unwrap_err().to_string();
            assert!(
                message.starts_with(&format!("invalid image reference {text:?}: "))
                    && message.ends_with("; expected [REGISTRY/]REPOSITORY[:TAG][@sha256:DIGEST]"),
                "{message}"
            );
        }
    }

    #[test]
    fn the_text_written_is_kept_apart_from_the_normalised_name() {
        let r = parsed(" busybox ");
        assert_eq!((r.as_str(), r.to_string()), ("busybox", "busybox".into()));
        assert_eq!(format!("{r:?}"), "\"busybox\"");
        assert_eq!(
            r.lookup_names(),
            ["busybox", "docker.io/library/busybox:latest"]
        );
        let whole = parsed("docker.io/library/busybox:latest");
        assert_eq!(whole.lookup_names(), ["docker.io/library/busybox:latest"]);
        assert_ne!(r, whole);
    }

    #[test]
    fn serializes_as_the_text_written_and_refuses_bad_text_when_read() {
        let r = parsed("busybox:1");
        assert_eq!(serde_json::to_string(&r).unwrap(), r#""busybox:1""#);
        let back: ImageRef = serde_json::from_str(r#""busybox:1""#).unwrap();
        assert_eq!(back, r);
        let err = serde_json::from_str::<ImageRef>(r#""UPPER/Case::bad""#).unwrap_err();
        assert!(
            err.to_string()
                .contains("repository names must be lowercase"),
            "{err}"
        );
    }
}
