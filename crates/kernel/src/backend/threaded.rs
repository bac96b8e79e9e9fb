//! [`Threaded`]: runs a blocking [`TextBackend`] (an HTTP client) on a worker
//! thread so the kernel stops waiting at its deadline. A call that misses the
//! deadline keeps running on the worker; until it ends, further requests are
//! answered [`BackendError::Busy`] at once, and its late answer is discarded.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::Instant;

use super::{Backend, Proposal, ProposalRequest, TextRequest};
use crate::error::BackendError;

/// A backend that needs only the text of a request and may block.
pub trait TextBackend: Send + 'static {
    /// Name for tables and audit records.
    fn name(&self) -> String;
    /// Answer `req` (blocking).
    fn complete(&mut self, req: &TextRequest) -> Result<Proposal, BackendError>;
}

type Reply = (u64, Result<Proposal, BackendError>);

/// A [`TextBackend`] on its own worker thread.
pub struct Threaded {
    name: String,
    tx: Option<Sender<(u64, TextRequest)>>,
    rx: Receiver<Reply>,
    seq: u64,
    pending: Option<u64>,
}

impl Threaded {
    /// Start a worker thread owning `inner`.
    pub fn spawn<T: TextBackend>(mut inner: T) -> Self {
        let name = inner.name();
        let (tx, jobs) = mpsc::channel::<(u64, TextRequest)>();
        let (done, rx) = mpsc::channel::<Reply>();
        let spawned = std::thread::Builder::new()
            .name(format!("llmchain-backend-{name}"))
            .spawn(move || {
                for (seq, req) in jobs {
                    let r = inner.complete(&req);
                    if done.send((seq, r)).is_err() {
                        break;
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot spawn backend worker thread");
        }
        Threaded {
            name,
            tx: Some(tx),
            rx,
            seq: 0,
            pending: None,
        }
    }
}

impl Backend for Threaded {
    fn name(&self) -> &str {
        &self.name
    }

    fn propose(&mut self, req: &ProposalRequest<'_>) -> Result<Proposal, BackendError> {
        // Collect a late answer to an earlier, timed-out call.
        while let Some(p) = self.pending {
            match self.rx.try_recv() {
                Ok((s, _late)) if s == p => self.pending = None,
                Ok(_) => {}
                Err(mpsc::TryRecvError::Empty) => return Err(BackendError::Busy),
                Err(mpsc::TryRecvError::Disconnected) => return Err(BackendError::WorkerGone),
            }
        }
        self.seq += 1;
        let seq = self.seq;
        let tx = self.tx.as_ref().ok_or(BackendError::WorkerGone)?;
        tx.send((seq, req.text.clone()))
            .map_err(|_| BackendError::WorkerGone)?;
        loop {
            let left = req.text.deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok((s, r)) if s == seq => return r,
                Ok(_) => continue,
                Err(RecvTimeoutError::Timeout) => {
                    self.pending = Some(seq);
                    return Err(BackendError::Timeout {
                        deadline_ms: req.text.deadline_ms,
                    });
                }
                Err(RecvTimeoutError::Disconnected) => return Err(BackendError::WorkerGone),
            }
        }
    }
}

impl Drop for Threaded {
    fn drop(&mut self) {
        // Closing the job channel ends the worker after its current call;
        // it is not joined, so dropping never blocks on a slow server.
        self.tx.take();
    }
}
