//! Tells of a scan's problems once each: an event and a count by reason for every manifest
//! error, an event for every ignored field.

use std::collections::HashSet;
use std::sync::atomic::Ordering;

use super::shared::Shared;
use crate::source::manifests::Desired;

pub fn report_scan(shared: &Shared, desired: &Desired, seen: &mut HashSet<String>) {
    for (file, error) in &desired.errors {
        let message = error.to_string();
        if !seen.insert(message.clone()) {
            continue;
        }
        shared.manifest_errors.fetch_add(1, Ordering::Relaxed);
        shared
            .metrics
            .manifest_validation_errors
            .with_label_values(&[error.reason()])
            .inc();
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        shared.event("Warning", "", &name, None, "FailedValidation", message);
    }
    for (pod, warning) in &desired.warnings {
        let text = format!("{pod}: {}: {}", warning.field, warning.message);
        if seen.insert(text) {
            let (ns, name) = pod.split_once('/').unwrap_or(("default", pod));
            shared.event(
                "Normal",
                ns,
                name,
                None,
                "IgnoredField",
                format!("{}: {}", warning.field, warning.message),
            );
        }
    }
}
