//! Authentication and authorization as kubelet does them, before anything else runs:
//! x509 client certificates (checked against `--client-ca-file`), bearer tokens (the API
//! server's TokenReview), anonymous requests only with `--anonymous-auth`; then
//! `--authorization-mode`: AlwaysAllow, or Webhook (a SubjectAccessReview of the node
//! subresource the path falls under). Reviews are cached as kubelet caches them.

pub mod attributes;
pub mod cache;
pub mod review;
pub mod subject;

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest as _, Sha256};

use attributes::Attributes;
use cache::TtlCache;
use review::{Extra, Reviewer};

/// How long a TokenReview's answer is kept (kubelet's authentication webhook cache).
pub const TOKEN_TTL: Duration = Duration::from_secs(120);
/// How long an allowed / a denied SubjectAccessReview is kept.
pub const ALLOWED_TTL: Duration = Duration::from_secs(300);
pub const DENIED_TTL: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct UserInfo {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
    pub extra: Extra,
}

impl UserInfo {
    fn anonymous() -> UserInfo {
        UserInfo {
            name: "system:anonymous".into(),
            groups: vec!["system:unauthenticated".into()],
            ..Default::default()
        }
    }
}

/// `--authorization-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthorizationMode {
    AlwaysAllow,
    Webhook,
}

/// What the connection's TLS handshake established about the client.
#[derive(Debug, Clone)]
pub enum PeerCert {
    /// No certificate presented (or no client CA configured).
    None,
    /// A certificate that chains to the client CA: its user.
    Valid(UserInfo),
    /// A certificate that does not: why.
    Invalid(String),
}

/// The result of authentication and authorization, as kubelet answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allowed(UserInfo),
    /// 401 "Unauthorized".
    Unauthorized,
    /// 403 with kubelet's message.
    Forbidden(String),
    /// 500: the authorizer could not decide.
    Error(String),
}

pub struct Auth {
    pub anonymous: bool,
    pub mode: AuthorizationMode,
    pub reviewer: Option<Arc<dyn Reviewer>>,
    tokens: TtlCache<[u8; 32], Option<UserInfo>>,
    decisions: TtlCache<(UserInfo, Attributes), bool>,
}

impl Auth {
    pub fn new(
        anonymous: bool,
        mode: AuthorizationMode,
        reviewer: Option<Arc<dyn Reviewer>>,
    ) -> Auth {
        Auth {
            anonymous,
            mode,
            reviewer,
            tokens: TtlCache::default(),
            decisions: TtlCache::default(),
        }
    }

    /// Who made the request: a valid certificate, else a bearer token, else anonymous.
    async fn authenticate(&self, peer: &PeerCert, bearer: Option<&str>) -> Option<UserInfo> {
        let user = match (peer, bearer) {
            (PeerCert::Valid(user), _) => user.clone(),
            // A token may still vouch for the client; without one the certificate's
            // failure fails the request, even with anonymous requests allowed.
            (_, Some(token)) => self.review_token(token).await?,
            (PeerCert::Invalid(why), None) => {
                tracing::info!(reason = %why, "kubelet API: client certificate refused");
                return None;
            }
            (PeerCert::None, None) => {
                return self.anonymous.then(UserInfo::anonymous);
            }
        };
        let mut user = user;
        if !user.groups.iter().any(|g| g == "system:authenticated") {
            user.groups.push("system:authenticated".into());
        }
        Some(user)
    }

    async fn review_token(&self, token: &str) -> Option<UserInfo> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(hit) = self.tokens.get(&key) {
            return hit;
        }
        // No API server: nobody can vouch for a token.
        let reviewer = self.reviewer.as_ref()?;
        match reviewer.token(token).await {
            Ok(user) => {
                self.tokens.put(key, user.clone(), TOKEN_TTL);
                user
            }
            Err(e) => {
                tracing::warn!(error = %e, "kubelet API: token review failed");
                None
            }
        }
    }

    /// Authenticates and authorizes one request.
    pub async fn check(
        &self,
        peer: &PeerCert,
        bearer: Option<&str>,
        attrs: &Attributes,
    ) -> Verdict {
        let Some(user) = self.authenticate(peer, bearer).await else {
            return Verdict::Unauthorized;
        };
        let forbidden = |user: &UserInfo| {
            format!(
                "Forbidden (user={}, verb={}, resource=nodes, subresource={})",
                user.name, attrs.verb, attrs.subresource
            )
        };
        match self.mode {
            AuthorizationMode::AlwaysAllow => Verdict::Allowed(user),
            AuthorizationMode::Webhook => {
                let key = (user.clone(), attrs.clone());
                if let Some(allowed) = self.decisions.get(&key) {
                    return if allowed {
                        Verdict::Allowed(user)
                    } else {
                        Verdict::Forbidden(forbidden(&user))
                    };
                }
                let Some(reviewer) = &self.reviewer else {
                    return Verdict::Error(format!(
                        "Authorization error (user={}, verb={}, resource=nodes, subresource={})",
                        user.name, attrs.verb, attrs.subresource
                    ));
                };
                match reviewer.access(&user, attrs).await {
                    Ok((allowed, reason)) => {
                        let ttl = if allowed { ALLOWED_TTL } else { DENIED_TTL };
                        self.decisions.put(key, allowed, ttl);
                        if allowed {
                            Verdict::Allowed(user)
                        } else {
                            tracing::info!(user = %user.name, verb = attrs.verb, subresource = attrs.subresource, %reason, "kubelet API: request forbidden");
                            Verdict::Forbidden(forbidden(&user))
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "kubelet API: access review failed");
                        Verdict::Error(format!(
                            "Authorization error (user={}, verb={}, resource=nodes, subresource={})",
                            user.name, attrs.verb, attrs.subresource
                        ))
                    }
                }
            }
        }
    }
}

/// The user of a verified client certificate chain's leaf.
pub fn certificate_user(der: &[u8]) -> Option<UserInfo> {
    let (name, groups) = subject::subject(der)?;
    if name.is_empty() {
        return None;
    }
    Some(UserInfo {
        name,
        groups,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Fake {
        tokens: AtomicUsize,
        reviews: AtomicUsize,
        allow: bool,
    }

    impl Reviewer for Fake {
        fn token<'a>(&'a self, token: &'a str) -> review::ReviewFuture<'a, Option<UserInfo>> {
            self.tokens.fetch_add(1, Ordering::SeqCst);
            let user = (token == "good").then(|| UserInfo {
                name: "tok".into(),
                ..Default::default()
            });
            Box::pin(async move { Ok(user) })
        }
        fn access<'a>(
            &'a self,
            _: &'a UserInfo,
            _: &'a Attributes,
        ) -> review::ReviewFuture<'a, (bool, String)> {
            self.reviews.fetch_add(1, Ordering::SeqCst);
            let allow = self.allow;
            Box::pin(async move { Ok((allow, String::new())) })
        }
    }

    fn attrs() -> Attributes {
        attributes::attributes("POST", "/exec/ns/p/c", "node-1")
    }

    fn block<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    fn fake(allow: bool) -> Arc<Fake> {
        Arc::new(Fake {
            tokens: AtomicUsize::new(0),
            reviews: AtomicUsize::new(0),
            allow,
        })
    }

    #[test]
    fn anonymous_requests_are_refused_unless_allowed() {
        let auth = Auth::new(false, AuthorizationMode::AlwaysAllow, None);
        assert_eq!(
            block(auth.check(&PeerCert::None, None, &attrs())),
            Verdict::Unauthorized
        );
        let auth = Auth::new(true, AuthorizationMode::AlwaysAllow, None);
        match block(auth.check(&PeerCert::None, None, &attrs())) {
            Verdict::Allowed(u) => assert_eq!(u.name, "system:anonymous"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_certificate_of_another_ca_is_refused_even_with_anonymous_allowed() {
        let auth = Auth::new(true, AuthorizationMode::AlwaysAllow, None);
        let peer = PeerCert::Invalid("unknown issuer".into());
        assert_eq!(
            block(auth.check(&peer, None, &attrs())),
            Verdict::Unauthorized
        );
    }

    #[test]
    fn tokens_are_refused_without_an_api_server_and_reviewed_once_with_one() {
        let auth = Auth::new(false, AuthorizationMode::AlwaysAllow, None);
        assert_eq!(
            block(auth.check(&PeerCert::None, Some("good"), &attrs())),
            Verdict::Unauthorized
        );
        let reviewer = fake(true);
        let auth = Auth::new(
            false,
            AuthorizationMode::AlwaysAllow,
            Some(reviewer.clone()),
        );
        for _ in 0..3 {
            match block(auth.check(&PeerCert::None, Some("good"), &attrs())) {
                Verdict::Allowed(u) => {
                    assert_eq!(u.name, "tok");
                    assert!(u.groups.contains(&"system:authenticated".to_string()));
                }
                other => panic!("{other:?}"),
            }
            assert_eq!(
                block(auth.check(&PeerCert::None, Some("bad"), &attrs())),
                Verdict::Unauthorized
            );
        }
        assert_eq!(reviewer.tokens.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn webhook_denials_are_forbidden_with_kubelets_message_and_cached() {
        let reviewer = fake(false);
        let auth = Auth::new(false, AuthorizationMode::Webhook, Some(reviewer.clone()));
        let peer = PeerCert::Valid(UserInfo {
            name: "alice".into(),
            ..Default::default()
        });
        for _ in 0..2 {
            assert_eq!(
                block(auth.check(&peer, None, &attrs())),
                Verdict::Forbidden(
                    "Forbidden (user=alice, verb=create, resource=nodes, subresource=proxy)".into()
                )
            );
        }
        assert_eq!(reviewer.reviews.load(Ordering::SeqCst), 1);
    }
}
