//! The streaming protocols of exec, attach and port-forward: SPDY/3.1 (what the API server
//! speaks to kubelets) and WebSocket channels (what direct clients speak), with the
//! protocol versions kubelet accepts.

pub mod portforward;
pub mod remotecommand;
pub mod session;
pub mod spdy;
pub mod websocket;

use std::time::Duration;

/// How long a SPDY client has to open the streams it announced (kubelet's default).
pub const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);

/// remotecommand versions kubelet serves over SPDY, newest first.
pub const SPDY_REMOTECOMMAND: &[&str] = &[
    "v4.channel.k8s.io",
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
    "channel.k8s.io",
];
/// remotecommand versions served over WebSocket, newest first.
pub const WEBSOCKET_REMOTECOMMAND: &[&str] = &[
    "v5.channel.k8s.io",
    "v4.channel.k8s.io",
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
    "channel.k8s.io",
];
pub const PORTFORWARD: &str = "portforward.k8s.io";
/// SPDY carried in WebSocket binary messages (kubectl's port-forward since 1.31).
pub const PORTFORWARD_TUNNEL: &str = "SPDY/3.1+portforward.k8s.io";

/// The first of the server's versions (in its order) that the client offered; a client
/// offering none gets nothing.
pub fn negotiate(offered: &[String], ours: &[&'static str]) -> Option<&'static str> {
    ours.iter()
        .copied()
        .find(|v| offered.iter().any(|o| o.trim() == *v))
}

/// The header values of a list-valued header, split at commas.
pub fn list(values: &[&str]) -> Vec<String> {
    values
        .iter()
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Whether a remotecommand version reports the end as a metav1.Status (v4 and later).
pub fn status_style(version: &str) -> session::StatusStyle {
    if version.starts_with("v4.") || version.starts_with("v5.") {
        session::StatusStyle::Json
    } else {
        session::StatusStyle::Text
    }
}

/// Whether a version has the resize channel (v3 and later).
pub fn has_resize(version: &str) -> bool {
    !matches!(version, "channel.k8s.io" | "v2.channel.k8s.io")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_version_both_sides_speak_is_chosen() {
        let offered = list(&["v4.channel.k8s.io, v3.channel.k8s.io", "channel.k8s.io"]);
        assert_eq!(
            negotiate(&offered, SPDY_REMOTECOMMAND),
            Some("v4.channel.k8s.io")
        );
        let offered = list(&["v5.channel.k8s.io"]);
        assert_eq!(negotiate(&offered, SPDY_REMOTECOMMAND), None);
        assert_eq!(
            negotiate(&offered, WEBSOCKET_REMOTECOMMAND),
            Some("v5.channel.k8s.io")
        );
        assert!(has_resize("v3.channel.k8s.io"));
        assert!(!has_resize("v2.channel.k8s.io"));
    }
}
