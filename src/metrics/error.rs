//! The metrics module's error; in a file of its own so that the files returning it and
//! mod.rs, which uses them, do not use each other.

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("register metric {name}: {source}")]
    Register {
        name: String,
        #[source]
        source: prometheus::Error,
    },
    #[error("encode the metrics text: {0}")]
    Encode(#[source] prometheus::Error),
    #[error("start the accounting thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("inotify for the accounting of writable layers: {0}")]
    Inotify(#[source] nix::Error),
    #[error("open the node database for accounting: {0}")]
    Db(#[from] crate::meta::MetaError),
}
