//! What the kubelet API needs of the node, as one narrow trait: the API's handlers see pods,
//! containers, processes and figures through it and nothing else, so the protocol side is
//! tested without containers and the node side can change without touching the protocols.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

use k8s_openapi::api::core::v1::Pod;
use tokio::io::{AsyncRead, AsyncWrite};

use super::stats::NodeFigures;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("pod {namespace}/{pod} not found")]
    PodNotFound { namespace: String, pod: String },
    #[error("container {container} is not valid for pod {namespace}/{pod}")]
    ContainerNotFound {
        namespace: String,
        pod: String,
        container: String,
    },
    #[error("previous terminated container {container} in pod {namespace}/{pod} not found")]
    NoPrevious {
        namespace: String,
        pod: String,
        container: String,
    },
    #[error("container {container} in pod {namespace}/{pod} is not running")]
    NotRunning {
        namespace: String,
        pod: String,
        container: String,
    },
    #[error("{0}")]
    Unsupported(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Failed(String),
}

impl NodeError {
    /// The HTTP status kubelet answers with for this error.
    pub fn status(&self) -> u16 {
        match self {
            NodeError::PodNotFound { .. } | NodeError::ContainerNotFound { .. } => 404,
            NodeError::NoPrevious { .. } | NodeError::NotRunning { .. } => 400,
            NodeError::Unsupported(_) => 400,
            NodeError::Io { .. } | NodeError::Failed(_) => 500,
        }
    }
}

/// One container of a pod, found by namespace, pod name (and uid) and container name.
#[derive(Debug, Clone)]
pub struct ContainerRef {
    pub namespace: String,
    pub pod: String,
    pub pod_uid: String,
    pub container: String,
    /// The newest instance's ID and whether it runs.
    pub id: String,
    pub running: bool,
    /// The newest instance's CRI log file (rotated files beside it).
    pub log: PathBuf,
    /// The instance before it, if the node still has it (`previous`).
    pub previous_log: Option<PathBuf>,
    /// The container spec's `stdin` and `tty`.
    pub stdin: bool,
    pub tty: bool,
}

pub type ByteReader = Box<dyn AsyncRead + Send + Unpin>;
pub type ByteWriter = Box<dyn AsyncWrite + Send + Unpin>;
pub type ExitFuture = Pin<Box<dyn Future<Output = Result<i32, NodeError>> + Send>>;

/// Sets a terminal's size (columns, rows).
pub trait Resize: Send + Sync {
    fn resize(&self, width: u16, height: u16);
}

/// A process started in a container (exec) or a container's own streams (attach). Its
/// streams are bounded pipes: a reader that stops reading stops the process's writes,
/// never the agent.
pub struct Session {
    pub stdin: Option<ByteWriter>,
    pub stdout: Option<ByteReader>,
    pub stderr: Option<ByteReader>,
    /// With a terminal: how to resize it.
    pub resize: Option<Box<dyn Resize>>,
    /// The exit code, once the process has ended.
    pub exit: ExitFuture,
    /// Ends the process early (the client went away).
    pub kill: Box<dyn FnOnce() + Send>,
}

/// What an exec or attach asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamOptions {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

/// The node as the kubelet API sees it. Blocking methods: the server calls them from
/// blocking tasks.
pub trait NodeView: Send + Sync + 'static {
    /// Every pod the node runs, with its status (the `/pods` list).
    fn pods(&self) -> Vec<Pod>;
    /// A container by pod and container name; `uid`, when given, must be the pod's.
    fn container(
        &self,
        namespace: &str,
        pod: &str,
        uid: Option<&str>,
        container: &str,
    ) -> Result<ContainerRef, NodeError>;
    /// Starts `argv` (no shell) in the running container.
    fn exec(
        &self,
        target: &ContainerRef,
        argv: &[String],
        opts: &StreamOptions,
    ) -> Result<Session, NodeError>;
    /// Attaches to the container's own output (and input, where it keeps one).
    fn attach(&self, target: &ContainerRef, opts: &StreamOptions) -> Result<Session, NodeError>;
    /// The pod's uid, for a pod found by namespace and name (port-forward).
    fn pod_uid(&self, namespace: &str, pod: &str, uid: Option<&str>) -> Result<String, NodeError>;
    /// A TCP connection to `port` on the pod's loopback, made inside its network namespace.
    fn dial(&self, pod_uid: &str, port: u16) -> Result<std::net::TcpStream, NodeError>;
    /// Whether the container instance `id` still runs (cheap: its state files).
    fn is_running(&self, id: &str) -> bool;
    /// The figures of `/stats/summary` and `/metrics/*`.
    fn figures(&self) -> NodeFigures;
}
