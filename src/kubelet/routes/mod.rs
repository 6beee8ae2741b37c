//! The kubelet API's requests: authenticated and authorized first (nothing is parsed,
//! looked up or run for a request that fails), then routed by path.

pub mod path;
pub mod query;
pub mod respond;
pub mod upgrade;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hyper::body::Incoming;
use hyper::{Request, Response};
use k8s_openapi::api::core::v1::Pod;
use tokio::sync::mpsc;

use super::auth::attributes::attributes;
use super::auth::{Auth, PeerCert, Verdict};
use super::logs;
use super::node::{NodeError, NodeView};
use super::stats;
use path::{PathError, Route};
use respond::Body;

/// What every request handler shares.
pub struct App {
    pub auth: Auth,
    pub node: Arc<dyn NodeView>,
    pub node_name: String,
    /// `--streaming-connection-idle-timeout`.
    pub idle: Duration,
}

fn bearer(req: &Request<Incoming>) -> Option<String> {
    let value = req
        .headers()
        .get(hyper::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
        .filter(|t| !t.is_empty())
}

/// Runs a blocking node call off the async threads.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, NodeError> + Send + 'static,
) -> Result<T, NodeError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| NodeError::Failed(format!("node task failed: {e}")))?
}

pub fn node_error(e: &NodeError) -> Response<Body> {
    respond::text(e.status(), e.to_string())
}

pub async fn handle(
    app: Arc<App>,
    peer: Arc<PeerCert>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let attrs = attributes(&method, &path, &app.node_name);
    let token = bearer(&req);
    match app.auth.check(&peer, token.as_deref(), &attrs).await {
        Verdict::Allowed(user) => {
            tracing::debug!(user = %user.name, %method, %path, "kubelet API request");
        }
        Verdict::Unauthorized => return Ok(respond::text(401, "Unauthorized")),
        Verdict::Forbidden(msg) => return Ok(respond::text(403, msg)),
        Verdict::Error(msg) => return Ok(respond::text(500, msg)),
    }
    let route = match path::parse(&path) {
        Ok(r) => r,
        Err(PathError::BadName(msg)) => return Ok(respond::text(400, msg)),
        Err(PathError::NotFound) => return Ok(respond::text(404, "404 page not found\n")),
    };
    let streaming = matches!(
        route,
        Route::Exec(_) | Route::Attach(_) | Route::PortForward { .. }
    );
    let allowed = if streaming {
        method == "GET" || method == "POST"
    } else {
        method == "GET" || method == "HEAD"
    };
    if !allowed {
        return Ok(respond::text(
            405,
            format!("{method} is not allowed on {path}"),
        ));
    }
    let q = query::parse(req.uri().query());
    Ok(match route {
        Route::Healthz => respond::text(200, "ok"),
        Route::Pods => {
            let node = app.node.clone();
            match blocking(move || Ok(node.pods())).await {
                Ok(items) => respond::json(&k8s_openapi::List::<Pod> {
                    items,
                    metadata: Default::default(),
                }),
                Err(e) => node_error(&e),
            }
        }
        Route::ContainerLogs(t) => container_logs(&app, t, &q).await,
        Route::Exec(t) => upgrade::exec(&app, req, t, &q).await,
        Route::Attach(t) => upgrade::attach(&app, req, t, &q).await,
        Route::PortForward {
            namespace,
            pod,
            uid,
        } => upgrade::port_forward(&app, req, namespace, pod, uid).await,
        Route::StatsSummary => {
            with_figures(&app, |f| respond::json(&stats::summary::summary(f))).await
        }
        Route::MetricsResource => {
            with_figures(&app, |f| {
                respond::prometheus(stats::prometheus::resource(f))
            })
            .await
        }
        Route::MetricsCadvisor => {
            with_figures(&app, |f| {
                respond::prometheus(stats::prometheus::cadvisor(f))
            })
            .await
        }
        Route::MetricsProbes => {
            with_figures(&app, |f| respond::prometheus(stats::prometheus::probes(f))).await
        }
    })
}

async fn with_figures(
    app: &Arc<App>,
    f: impl FnOnce(&stats::NodeFigures) -> Response<Body>,
) -> Response<Body> {
    let node = app.node.clone();
    match blocking(move || Ok(node.figures())).await {
        Ok(figures) => f(&figures),
        Err(e) => node_error(&e),
    }
}

async fn container_logs(app: &Arc<App>, t: path::Target, q: &[(String, String)]) -> Response<Body> {
    let opts = match logs::options(q, SystemTime::now()) {
        Ok(o) => o,
        Err(msg) => return respond::text(400, msg),
    };
    let node = app.node.clone();
    let found =
        blocking(move || node.container(&t.namespace, &t.pod, t.uid.as_deref(), &t.container))
            .await;
    let c = match found {
        Ok(c) => c,
        Err(e) => return node_error(&e),
    };
    let (file, id) = if opts.previous {
        match &c.previous_log {
            Some(p) => (p.clone(), None),
            None => {
                return node_error(&NodeError::NoPrevious {
                    namespace: c.namespace,
                    pod: c.pod,
                    container: c.container,
                })
            }
        }
    } else {
        (c.log.clone(), Some(c.id.clone()))
    };
    let (tx, rx) = mpsc::channel(8);
    let node = app.node.clone();
    let running = move || id.as_deref().is_some_and(|id| node.is_running(id));
    logs::follow::stream(file, opts, running, tx);
    respond::streamed(rx)
}
