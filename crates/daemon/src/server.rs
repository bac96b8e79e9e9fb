//! The Unix-socket listener: one tokio task per connection, frames in,
//! frames out. Bad frames get an error response; an oversized or truncated
//! frame also ends the connection (the stream cannot be resynchronised).
//!
//! Connections are pipelined: a client may send further requests before the
//! answer to the previous one arrives (up to [`PIPELINE_DEPTH`] unanswered).
//! Replies come back in request order. Submits are validated and queued for
//! commit as soon as they are read, so one client's back-to-back submits share
//! a group commit (one fsync) instead of paying one each.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;

use crate::config::SocketAccess;
use crate::error::DaemonError;
use crate::frame::{self, FrameError};
use crate::handlers::{self, Caller, Reply};
use crate::protocol::{parse_request, ErrorCode, Response, ResponseEnvelope};
use crate::state::Shared;

/// Most connections served at once.
pub const MAX_CONNECTIONS: usize = 1024;
/// Most requests of one connection read but not yet answered.
pub const PIPELINE_DEPTH: usize = 256;
/// Time allowed for the rest of a frame once its length has arrived.
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(10);

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> DaemonError + 'a {
    move |source| DaemonError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// Create the socket's directory and bind the socket with the access mode's permissions.
///
/// The directory is created (if missing) and, when owned by us, set to 0700
/// ([`SocketAccess::Owner`]) or 0755 ([`SocketAccess::AllUsers`]) *before*
/// binding, so nobody else can reach the socket between `bind` and `chmod`.
/// A stale socket file (no daemon answering) is removed; a live one is an error.
pub fn bind(path: &Path, access: SocketAccess) -> Result<UnixListener, DaemonError> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io("create socket directory", dir))?;
    let meta = std::fs::metadata(dir).map_err(io("inspect socket directory", dir))?;
    use std::os::unix::fs::MetadataExt;
    let sticky = meta.mode() & 0o1000 != 0;
    if meta.uid() == crate::sys::euid() && !sticky {
        let mode = match access {
            SocketAccess::Owner => 0o700,
            SocketAccess::AllUsers => 0o755,
        };
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
            .map_err(io("chmod socket directory", dir))?;
    } else if access == SocketAccess::Owner {
        tracing::warn!(dir = %dir.display(), "socket directory is not ours; relying on the socket's mode 0600 alone");
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(DaemonError::AlreadyRunning {
                path: path.to_path_buf(),
            });
        }
        std::fs::remove_file(path).map_err(io("remove stale socket", path))?;
    }
    let listener = UnixListener::bind(path).map_err(io("bind socket", path))?;
    let mode = match access {
        SocketAccess::Owner => 0o600,
        SocketAccess::AllUsers => 0o666,
    };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(io("chmod socket", path))?;
    Ok(listener)
}

/// Accept connections until the listener fails or the task is dropped.
pub async fn serve(listener: UnixListener, shared: Arc<Shared>) {
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&limit).try_acquire_owned() else {
            tracing::warn!("too many connections ({MAX_CONNECTIONS}); refusing one");
            let mut s = stream;
            let _ = s
                .write_all(&frame::encode(&ResponseEnvelope::new(Response::error(
                    ErrorCode::Unavailable,
                    "too many connections",
                ))))
                .await;
            continue;
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            connection(stream, shared).await;
            drop(permit);
        });
    }
}

async fn send(stream: &mut (impl AsyncWrite + Unpin), resp: Response) -> bool {
    stream
        .write_all(&frame::encode(&ResponseEnvelope::new(resp)))
        .await
        .is_ok()
}

/// Read one frame: `Ok(None)` on a clean close between frames.
async fn read_frame(
    stream: &mut (impl AsyncRead + Unpin),
    max: usize,
    buf: &mut Vec<u8>,
) -> Result<Option<()>, FrameError> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        let n = if got == 0 {
            stream.read(&mut len[got..]).await?
        } else {
            match tokio::time::timeout(FRAME_TIMEOUT, stream.read(&mut len[got..])).await {
                Ok(r) => r?,
                Err(_) => 0,
            }
        };
        if n == 0 {
            return if got == 0 {
                Ok(None)
            } else {
                Err(FrameError::Truncated { expected: 4, got })
            };
        }
        got += n;
    }
    let n = frame::check_len(u32::from_be_bytes(len), max)?;
    buf.clear();
    buf.resize(n, 0);
    let mut got = 0;
    while got < n {
        let r = match tokio::time::timeout(FRAME_TIMEOUT, stream.read(&mut buf[got..])).await {
            Ok(r) => r?,
            Err(_) => 0,
        };
        if r == 0 {
            return Err(FrameError::Truncated { expected: n, got });
        }
        got += r;
    }
    Ok(Some(()))
}

async fn connection(mut stream: UnixStream, shared: Arc<Shared>) {
    let uid = match stream.peer_cred() {
        Ok(c) => c.uid(),
        Err(e) => {
            tracing::warn!("cannot read peer credentials: {e}; closing");
            let _ = send(
                &mut stream,
                Response::error(ErrorCode::Forbidden, "peer credentials unavailable"),
            )
            .await;
            return;
        }
    };
    let caller = Caller { uid, http: false };
    let max = shared.config.max_frame;
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<handlers::PendingReply>(PIPELINE_DEPTH);
    // Replies, in request order.
    let replies = tokio::spawn(async move {
        while let Some(pending) = rx.recv().await {
            match pending.await {
                Reply::One(r) => {
                    if !send(&mut wr, r).await {
                        return;
                    }
                }
                Reply::Stream(mut srx) => {
                    while let Some(r) = srx.recv().await {
                        if !send(&mut wr, r).await {
                            return;
                        }
                    }
                }
            }
        }
    });
    let ready =
        |r: Response| -> handlers::PendingReply { Box::pin(std::future::ready(Reply::One(r))) };
    let mut buf = Vec::new();
    loop {
        match read_frame(&mut rd, max, &mut buf).await {
            Ok(None) => break,
            Ok(Some(())) => {}
            Err(e) => {
                let code = match e {
                    FrameError::TooLarge { .. } => ErrorCode::FrameTooLarge,
                    _ => ErrorCode::BadFrame,
                };
                tracing::debug!(uid, "bad frame: {e}");
                let _ = tx.send(ready(Response::error(code, e.to_string()))).await;
                break;
            }
        }
        let pending = match parse_request(&buf) {
            Ok(req) => handlers::start(&shared, caller, req),
            Err(e) => ready(Response::Error(e)),
        };
        if tx.send(pending).await.is_err() {
            break; // the reply side stopped: the peer is gone
        }
    }
    drop(tx);
    let _ = replies.await;
}
