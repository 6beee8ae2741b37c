//! A small server side of SPDY/3.1, as far as Kubernetes' streaming protocols use it
//! (remotecommand and portforward): frames, the zlib header dictionary, stream windows.

pub mod conn;
pub mod frame;
pub mod headers;

pub use conn::{start, Conn, Event, Outbox};
