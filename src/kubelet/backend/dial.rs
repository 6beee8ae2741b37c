//! A TCP connection to a port on a pod's loopback, made on a fresh thread that joined the
//! pod's pinned network namespace (the thread ends there; the socket stays in the pod's
//! namespace). A host-network pod is dialled from the host's namespace.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::Duration;

use nix::sched::{setns, CloneFlags};

use crate::kubelet::node::NodeError;
use crate::pod::spec::PodSpec;
use crate::runtime::container::Runtime;
use crate::runtime::sandbox::sandbox_dir;

const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

pub fn dial(rt: &Runtime, pod: &PodSpec, port: u16) -> Result<TcpStream, NodeError> {
    let netns = if pod.host_network {
        None
    } else {
        let dir = sandbox_dir(&rt.layout, pod).map_err(|e| NodeError::Failed(e.to_string()))?;
        let path = dir.join("ns").join("net");
        Some(std::fs::File::open(&path).map_err(|source| NodeError::Io {
            what: format!("open the network namespace of pod {}", pod.key()),
            source,
        })?)
    };
    let connect = move || -> Result<TcpStream, String> {
        if let Some(ns) = netns {
            setns(ns, CloneFlags::CLONE_NEWNET)
                .map_err(|e| format!("join the pod's network namespace: {e}"))?;
        }
        let v4 = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        match TcpStream::connect_timeout(&v4, DIAL_TIMEOUT) {
            Ok(s) => Ok(s),
            Err(e4) => {
                let v6 = SocketAddr::from((Ipv6Addr::LOCALHOST, port));
                TcpStream::connect_timeout(&v6, DIAL_TIMEOUT)
                    .map_err(|_| format!("dial tcp {v4}: {e4}"))
            }
        }
    };
    std::thread::Builder::new()
        .name("kubelet-dial".into())
        .spawn(connect)
        .map_err(|source| NodeError::Io {
            what: "start the dialling thread".into(),
            source,
        })?
        .join()
        .map_err(|_| NodeError::Failed("the dialling thread panicked".into()))?
        .map_err(NodeError::Failed)
}
