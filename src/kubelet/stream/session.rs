//! One exec or attach session between a client and a process, whatever the transport:
//! client input (stdin, resize) to the process, its output to the client, and at the end
//! the exit status on the error channel, as kubelet writes it. Every hop is a bounded queue
//! or a pipe, so a slow client slows the process's output and nothing else.

use std::time::Duration;

use bytes::Bytes;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Status, StatusCause, StatusDetails};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::kubelet::node::{ByteReader, NodeError, Session};

/// The channels of the remotecommand protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Chan {
    Stdin,
    Stdout,
    Stderr,
    Error,
    Resize,
}

/// From the client.
#[derive(Debug)]
pub enum In {
    Data(Chan, Bytes),
    Eof(Chan),
}

/// To the client.
#[derive(Debug)]
pub enum Out {
    Data(Chan, Bytes),
    Eof(Chan),
}

/// How the error channel reports the end: v4 and later a metav1.Status as JSON; older
/// versions the failure's message as text, nothing on success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusStyle {
    Json,
    Text,
}

/// How long output may still drain after the process exited (a background child may hold
/// the pipe open forever).
const DRAIN: Duration = Duration::from_secs(5);

pub fn exit_status(code: i32) -> Status {
    if code == 0 {
        return Status {
            status: Some("Success".into()),
            ..Default::default()
        };
    }
    Status {
        status: Some("Failure".into()),
        reason: Some("NonZeroExitCode".into()),
        message: Some(format!(
            "command terminated with non-zero exit code: exit status {code}"
        )),
        details: Some(StatusDetails {
            causes: Some(vec![StatusCause {
                reason: Some("ExitCode".into()),
                message: Some(code.to_string()),
                field: None,
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn error_status(err: &NodeError) -> Status {
    Status {
        status: Some("Failure".into()),
        code: Some(500),
        reason: Some("InternalError".into()),
        message: Some(format!("Internal error occurred: {err}")),
        details: Some(StatusDetails {
            causes: Some(vec![StatusCause {
                message: Some(err.to_string()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The error channel's bytes for `status`; None when nothing is written (text, success).
pub fn status_bytes(status: &Status, style: StatusStyle) -> Option<Bytes> {
    match style {
        StatusStyle::Json => serde_json::to_vec(status).ok().map(Bytes::from),
        StatusStyle::Text if status.status.as_deref() == Some("Success") => None,
        StatusStyle::Text => Some(Bytes::from(status.message.clone().unwrap_or_default())),
    }
}

/// The terminal sizes in a resize channel's bytes: JSON objects one after another.
pub fn sizes(pending: &mut Vec<u8>, data: &[u8]) -> Vec<(u16, u16)> {
    #[derive(serde::Deserialize)]
    struct Size {
        #[serde(rename = "Width")]
        width: u16,
        #[serde(rename = "Height")]
        height: u16,
    }
    pending.extend_from_slice(data);
    let mut out = Vec::new();
    let mut used = 0;
    let mut stream = serde_json::Deserializer::from_slice(pending).into_iter::<Size>();
    while let Some(Ok(s)) = stream.next() {
        used = stream.byte_offset();
        out.push((s.width, s.height));
    }
    pending.drain(..used);
    // A client sending garbage without end must not grow this.
    if pending.len() > 4096 {
        pending.clear();
    }
    out
}

async fn copy_out(mut from: ByteReader, chan: Chan, out: mpsc::Sender<Out>) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if out
                    .send(Out::Data(chan, Bytes::copy_from_slice(&buf[..n])))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    }
    let _ = out.send(Out::Eof(chan)).await;
}

/// Runs `session` until its process ends or the client goes away (then the process is
/// killed). Returns when the error channel has its status.
pub async fn run(
    session: Session,
    mut inbound: mpsc::Receiver<In>,
    out: mpsc::Sender<Out>,
    style: StatusStyle,
) {
    let Session {
        mut stdin,
        stdout,
        stderr,
        resize,
        mut exit,
        kill,
    } = session;
    let mut copies = Vec::new();
    for (reader, chan) in [(stdout, Chan::Stdout), (stderr, Chan::Stderr)] {
        if let Some(r) = reader {
            copies.push(tokio::spawn(copy_out(r, chan, out.clone())));
        }
    }
    let mut pending = Vec::new();
    let code = loop {
        tokio::select! {
            code = &mut exit => break code,
            msg = inbound.recv() => match msg {
                None => {
                    // The client is gone: nobody will read what the process does.
                    kill();
                    for c in copies {
                        c.abort();
                    }
                    return;
                }
                Some(In::Data(Chan::Stdin, data)) => {
                    if let Some(w) = stdin.as_mut() {
                        if w.write_all(&data).await.is_err() {
                            stdin = None;
                        }
                    }
                }
                Some(In::Eof(Chan::Stdin)) => {
                    if let Some(mut w) = stdin.take() {
                        let _ = w.shutdown().await;
                    }
                }
                Some(In::Data(Chan::Resize, data)) => {
                    if let Some(r) = &resize {
                        for (w, h) in sizes(&mut pending, &data) {
                            r.resize(w, h);
                        }
                    }
                }
                Some(_) => {}
            }
        }
    };
    drop(stdin);
    let drained = async {
        for c in copies.iter_mut() {
            let _ = c.await;
        }
    };
    if tokio::time::timeout(DRAIN, drained).await.is_err() {
        for c in &copies {
            c.abort();
        }
    }
    let status = match code {
        Ok(code) => exit_status(code),
        Err(e) => error_status(&e),
    };
    if let Some(bytes) = status_bytes(&status, style) {
        let _ = out.send(Out::Data(Chan::Error, bytes)).await;
    }
    let _ = out.send(Out::Eof(Chan::Error)).await;
}

/// Starts the session with `start` and runs it; a start that fails is reported on the
/// error channel as kubelet reports it.
pub async fn start_and_run<F>(
    start: F,
    inbound: mpsc::Receiver<In>,
    out: mpsc::Sender<Out>,
    style: StatusStyle,
) where
    F: std::future::Future<Output = Result<Session, NodeError>>,
{
    match start.await {
        Ok(s) => run(s, inbound, out, style).await,
        Err(e) => {
            tracing::info!(error = %e, "kubelet API: exec/attach failed to start");
            if let Some(bytes) = status_bytes(&error_status(&e), style) {
                let _ = out.send(Out::Data(Chan::Error, bytes)).await;
            }
            let _ = out.send(Out::Eof(Chan::Error)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_non_zero_exit_is_a_failure_status_with_the_code_as_its_cause() {
        let json = serde_json::to_value(exit_status(3)).unwrap();
        assert_eq!(json["status"], "Failure");
        assert_eq!(json["reason"], "NonZeroExitCode");
        assert_eq!(json["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(json["details"]["causes"][0]["message"], "3");
        let ok = serde_json::to_value(exit_status(0)).unwrap();
        assert_eq!(ok["status"], "Success");
        assert!(status_bytes(&exit_status(0), StatusStyle::Text).is_none());
        assert_eq!(
            status_bytes(&exit_status(2), StatusStyle::Text).unwrap(),
            "command terminated with non-zero exit code: exit status 2"
        );
    }

    #[test]
    fn resize_messages_are_read_across_chunk_boundaries() {
        let mut pending = Vec::new();
        assert_eq!(
            sizes(&mut pending, br#"{"Width":80,"Height":24}{"Wid"#),
            vec![(80, 24)]
        );
        assert_eq!(
            sizes(&mut pending, br#"th":100,"Height":50}"#),
            vec![(100, 50)]
        );
        assert!(pending.is_empty());
    }
}
