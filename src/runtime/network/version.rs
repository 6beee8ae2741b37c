//! CNI spec versions ("0.4.0", "1.0.0", "1.1.0") as comparable values.

/// A CNI spec version; missing minor or patch parts count as zero, as libcni reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SpecVersion(pub u32, pub u32, pub u32);

/// The oldest spec whose results layerlet reads (0.1.0 and 0.2.0 results have another shape).
pub const OLDEST_READ: SpecVersion = SpecVersion(0, 3, 0);
/// The first spec with DEL given the ADD result (`prevResult`) and with CHECK.
pub const PREV_RESULT_ON_DEL: SpecVersion = SpecVersion(0, 4, 0);
/// The first spec with GC and STATUS.
pub const GC_AND_STATUS: SpecVersion = SpecVersion(1, 1, 0);

impl SpecVersion {
    pub fn parse(text: &str) -> Option<SpecVersion> {
        let mut parts = text.split('.');
        let mut next = |required: bool| -> Option<u32> {
            match parts.next() {
                Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p.parse().ok(),
                None if !required => Some(0),
                _ => None,
            }
        };
        let version = SpecVersion(next(true)?, next(false)?, next(false)?);
        parts.next().is_none().then_some(version)
    }

    /// True when `text` parses and is at least `self`.
    pub fn is_met_by(self, text: &str) -> bool {
        SpecVersion::parse(text).is_some_and(|v| v >= self)
    }
}

impl std::fmt::Display for SpecVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_numerically_not_as_text() {
        assert!(SpecVersion::parse("0.10.0").unwrap() > SpecVersion::parse("0.4.0").unwrap());
        assert!(SpecVersion::parse("1.0.0").unwrap() < GC_AND_STATUS);
        assert_eq!(SpecVersion::parse("1.1"), Some(SpecVersion(1, 1, 0)));
        assert!(GC_AND_STATUS.is_met_by("1.1.0"));
        assert!(!GC_AND_STATUS.is_met_by("1.0.0"));
    }

    #[test]
    fn malformed_versions_do_not_parse() {
        for bad in ["", "1..0", "v1.0.0", "1.0.0.0", "1.0.0-rc1", "one"] {
            assert_eq!(SpecVersion::parse(bad), None, "{bad}");
            assert!(!OLDEST_READ.is_met_by(bad));
        }
    }
}
