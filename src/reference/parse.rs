//! Docker's reference grammar, checked by hand rather than with a regex: the regex of the
//! distribution grammar takes tens of milliseconds to compile, which every process that
//! reads a pod would pay at start.
//!
//! ```text
//! reference  := name [ ":" tag ] [ "@" digest ]
//! name       := [ host [ ":" port ] "/" ] component ( "/" component )*
//! host       := label ( "." label )*          label := [A-Za-z0-9] ( [A-Za-z0-9-]* [A-Za-z0-9] )?
//! component  := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
//! tag        := [A-Za-z0-9_] [A-Za-z0-9_.-]{0,127}
//! digest     := "sha256:" [0-9a-f]{64}
//! ```

use super::Problem;

/// Docker Hub, as normalised names spell it.
pub(super) const DOCKER_HUB: &str = "docker.io";
/// Docker Hub's other name, which normalises to [`DOCKER_HUB`].
const DOCKER_HUB_LEGACY: &str = "index.docker.io";
/// The namespace of Docker Hub's official images (`busybox` is `library/busybox`).
const OFFICIAL_NAMESPACE: &str = "library";
/// The tag of a reference that names neither a tag nor a digest.
pub(super) const DEFAULT_TAG: &str = "latest";
/// Docker's limit on a repository name (after normalisation).
pub(super) const MAX_REPOSITORY_LEN: usize = 255;
const MAX_TAG_LEN: usize = 128;

/// The parts of a reference, normalised as Docker does.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Parts {
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

pub(super) fn parse(text: &str) -> Result<Parts, Problem> {
    if text.is_empty() {
        return Err(Problem::Empty);
    }
    // Neither a name nor a tag may contain '@', so the first one starts the digest.
    let (name_and_tag, digest) = match text.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (text, None),
    };
    // A ':' after the last '/' starts the tag; one before it separates a registry's port.
    let (name, tag) = match name_and_tag.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name, Some(tag)),
        _ => (name_and_tag, None),
    };
    let (registry, repository) = split_registry(name);
    if let Some(host) = registry {
        check_host(host)?;
    }
    check_repository(repository)?;
    if let Some(tag) = tag {
        check_tag(tag)?;
    }
    if let Some(digest) = digest {
        check_digest(digest)?;
    }

    let registry = match registry {
        None | Some(DOCKER_HUB_LEGACY) => DOCKER_HUB,
        Some(host) => host,
    };
    let repository = if registry == DOCKER_HUB && !repository.contains('/') {
        format!("{OFFICIAL_NAMESPACE}/{repository}")
    } else {
        repository.to_string()
    };
    if repository.len() > MAX_REPOSITORY_LEN {
        return Err(Problem::TooLong(repository.len()));
    }
    let tag = match (tag, digest) {
        (None, None) => Some(DEFAULT_TAG),
        (tag, _) => tag,
    };
    Ok(Parts {
        registry: registry.to_string(),
        repository,
        tag: tag.map(str::to_string),
        digest: digest.map(str::to_string),
    })
}

/// Docker's rule: the first component names a registry when more follow and it has a '.'
/// or a ':', or is `localhost`; otherwise the name is on Docker Hub.
fn split_registry(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
            (Some(first), rest)
        }
        _ => (None, name),
    }
}

fn check_host(host_and_port: &str) -> Result<(), Problem> {
    let bad = || Problem::Registry(host_and_port.to_string());
    let (host, port) = match host_and_port.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (host_and_port, None),
    };
    if !host.split('.').all(is_host_label) {
        return Err(bad());
    }
    match port {
        Some(port) if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) => Err(bad()),
        _ => Ok(()),
    }
}

fn is_host_label(label: &str) -> bool {
    let bytes = label.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        }
        _ => false,
    }
}

fn check_repository(repository: &str) -> Result<(), Problem> {
    if repository.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(Problem::Uppercase);
    }
    match repository.split('/').find(|c| !is_path_component(c)) {
        Some(component) => Err(Problem::PathComponent(component.to_string())),
        None => Ok(()),
    }
}

/// Runs of `[a-z0-9]` joined by exactly one separator: `.`, `_`, `__` or any number of `-`.
fn is_path_component(component: &str) -> bool {
    let alphanumeric = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = component.as_bytes();
    let mut i = 0;
    loop {
        let run = bytes[i..].iter().take_while(|b| alphanumeric(b)).count();
        if run == 0 {
            return false;
        }
        i += run;
        let separator = match bytes.get(i) {
            None => return true,
            Some(b'-') => bytes[i..].iter().take_while(|b| **b == b'-').count(),
            Some(b'_') if bytes.get(i + 1) == Some(&b'_') => 2,
            Some(b'.' | b'_') => 1,
            Some(_) => return false,
        };
        i += separator;
    }
}

fn check_tag(tag: &str) -> Result<(), Problem> {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let valid = tag.len() <= MAX_TAG_LEN
        && tag.bytes().next().is_some_and(word)
        && tag.bytes().all(|b| word(b) || b == b'.' || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(Problem::Tag(tag.to_string()))
    }
}

/// Only sha256 digests: a digest names a file in the store, so layerlet accepts the one
/// algorithm it verifies.
fn check_digest(digest: &str) -> Result<(), Problem> {
    let valid = digest.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    });
    if valid {
        Ok(())
    } else {
        Err(Problem::Digest(digest.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_components_take_single_separators_between_lowercase_runs() {
        for good in ["a", "a0", "a.b", "a_b", "a__b", "a-b", "a---b", "a.b-c_d"] {
            assert!(is_path_component(good), "{good}");
        }
        for bad in [
            "", ".a", "a.", "a..b", "a___b", "a_.b", "-a", "a-", "aB", "a b", "a:b",
        ] {
            assert!(!is_path_component(bad), "{bad}");
        }
    }

    #[test]
    fn registry_hosts_are_dotted_labels_with_an_optional_numeric_port() {
        for good in ["localhost", "127.0.0.1:5000", "Quay.IO", "a-b.example:1"] {
            assert_eq!(check_host(good), Ok(()), "{good}");
        }
        for bad in [
            "foo_bar.com",
            "-a.com",
            "a..com",
            "host:",
            "host:port",
            "a.com:1:2",
        ] {
            assert!(check_host(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tags_are_word_characters_dots_and_dashes_up_to_128() {
        for good in ["1", "latest", "V1.2-rc_3", "_x", &"t".repeat(128)] {
            assert_eq!(check_tag(good), Ok(()), "{good}");
        }
        for bad in ["", ".1", "-1", "a/b", "é", &"t".repeat(129)] {
            assert!(check_tag(bad).is_err(), "{bad}");
        }
    }
}
