//! The API server's verdicts: TokenReview (who a bearer token is) and SubjectAccessReview
//! (whether a user may do something to the node), both built from k8s-openapi types and
//! posted through the agent's kube client.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::PostParams;

use super::attributes::Attributes;
use super::UserInfo;

pub type ReviewFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, String>> + Send + 'a>>;

/// Asks the API server; errors are the API's or the connection's, as text for the log.
pub trait Reviewer: Send + Sync {
    /// The user a token belongs to; None when the API server says it is not valid.
    fn token<'a>(&'a self, token: &'a str) -> ReviewFuture<'a, Option<UserInfo>>;
    /// Whether `user` may do `attrs`; the reason the API server gave with a denial.
    fn access<'a>(
        &'a self,
        user: &'a UserInfo,
        attrs: &'a Attributes,
    ) -> ReviewFuture<'a, (bool, String)>;
}

/// The reviews of a real API server, through a kube client.
pub struct KubeReviewer {
    pub client: kube::Client,
}

pub fn token_review(token: &str) -> TokenReview {
    TokenReview {
        spec: TokenReviewSpec {
            token: Some(token.to_string()),
            audiences: None,
        },
        ..Default::default()
    }
}

pub fn access_review(user: &UserInfo, attrs: &Attributes) -> SubjectAccessReview {
    SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.name.clone()),
            uid: (!user.uid.is_empty()).then(|| user.uid.clone()),
            groups: Some(user.groups.clone()),
            extra: (!user.extra.is_empty()).then(|| user.extra.clone()),
            resource_attributes: Some(ResourceAttributes {
                verb: Some(attrs.verb.to_string()),
                version: Some("v1".into()),
                group: Some(String::new()),
                resource: Some("nodes".into()),
                subresource: Some(attrs.subresource.to_string()),
                name: Some(attrs.node.clone()),
                namespace: Some(String::new()),
                ..Default::default()
            }),
            non_resource_attributes: None,
        },
        ..Default::default()
    }
}

/// The user of an authenticated TokenReview.
pub fn reviewed_user(review: &TokenReview) -> Option<UserInfo> {
    let status = review.status.as_ref()?;
    if status.authenticated != Some(true) {
        return None;
    }
    let user = status.user.as_ref()?;
    Some(UserInfo {
        name: user.username.clone().unwrap_or_default(),
        uid: user.uid.clone().unwrap_or_default(),
        groups: user.groups.clone().unwrap_or_default(),
        extra: user.extra.clone().unwrap_or_default(),
    })
}

impl Reviewer for KubeReviewer {
    fn token<'a>(&'a self, token: &'a str) -> ReviewFuture<'a, Option<UserInfo>> {
        Box::pin(async move {
            let api: kube::Api<TokenReview> = kube::Api::all(self.client.clone());
            let review = api
                .create(&PostParams::default(), &token_review(token))
                .await
                .map_err(|e| format!("TokenReview: {e}"))?;
            Ok(reviewed_user(&review))
        })
    }

    fn access<'a>(
        &'a self,
        user: &'a UserInfo,
        attrs: &'a Attributes,
    ) -> ReviewFuture<'a, (bool, String)> {
        Box::pin(async move {
            let api: kube::Api<SubjectAccessReview> = kube::Api::all(self.client.clone());
            let review = api
                .create(&PostParams::default(), &access_review(user, attrs))
                .await
                .map_err(|e| format!("SubjectAccessReview: {e}"))?;
            let status = review.status.unwrap_or_default();
            Ok((status.allowed, status.reason.unwrap_or_default()))
        })
    }
}

/// Extra user fields, as the reviews carry them.
pub type Extra = BTreeMap<String, Vec<String>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_access_review_asks_about_the_node_subresource() {
        let user = UserInfo {
            name: "alice".into(),
            groups: vec!["devs".into()],
            ..Default::default()
        };
        let attrs = Attributes {
            verb: "create",
            subresource: "proxy",
            node: "node-1".into(),
        };
        let json = serde_json::to_value(access_review(&user, &attrs)).unwrap();
        assert_eq!(json["apiVersion"], "authorization.k8s.io/v1");
        assert_eq!(json["kind"], "SubjectAccessReview");
        let ra = &json["spec"]["resourceAttributes"];
        assert_eq!(ra["resource"], "nodes");
        assert_eq!(ra["subresource"], "proxy");
        assert_eq!(ra["verb"], "create");
        assert_eq!(ra["name"], "node-1");
        assert_eq!(json["spec"]["user"], "alice");
        assert_eq!(json["spec"]["groups"][0], "devs");
    }

    #[test]
    fn only_an_authenticated_token_review_names_a_user() {
        let mut review: TokenReview = serde_json::from_value(serde_json::json!({
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
            "spec": {"token": "t"},
            "status": {"authenticated": true, "user": {"username": "bob", "groups": ["g"]}}
        }))
        .unwrap();
        assert_eq!(reviewed_user(&review).unwrap().name, "bob");
        review.status.as_mut().unwrap().authenticated = Some(false);
        assert_eq!(reviewed_user(&review), None);
    }
}
