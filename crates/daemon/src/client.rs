//! The blocking client: one Unix-socket connection, one request at a time
//! (or several submits in flight with [`Client::submit_pipelined`]).
//! Used by the CLI and the tests; needs no async runtime.

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use crate::frame::{self, FrameError};
use crate::protocol::*;

/// Largest response frame the client accepts (responses may be larger than requests).
pub const MAX_RESPONSE: usize = 64 << 20;

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The socket could not be reached.
    #[error("cannot connect to {}: is `llmchain daemon` running?", path.display())]
    Connect {
        /// The socket.
        path: PathBuf,
        /// The connect error.
        #[source]
        source: std::io::Error,
    },
    /// Sending or receiving failed.
    #[error("talking to the daemon at {}: {source}", path.display())]
    Frame {
        /// The socket.
        path: PathBuf,
        /// What broke.
        #[source]
        source: FrameError,
    },
    /// The daemon's answer was not a valid response.
    #[error("the daemon sent an invalid response: {0}")]
    BadResponse(String),
    /// The daemon answered with an error.
    #[error("{}: {}", code_name(.0.code), .0.message)]
    Daemon(ErrorResponse),
    /// The daemon answered with an unexpected response type.
    #[error("unexpected response from the daemon: {0}")]
    Unexpected(String),
}

fn code_name(c: ErrorCode) -> String {
    serde_json::to_value(c)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_else(|| format!("{c:?}"))
}

/// A connection to the daemon.
#[derive(Debug)]
pub struct Client {
    stream: UnixStream,
    path: PathBuf,
}

macro_rules! expect {
    ($resp:expr, $variant:ident) => {
        match $resp {
            Response::$variant(v) => Ok(v),
            Response::Error(e) => Err(ClientError::Daemon(e)),
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    };
}

impl Client {
    /// Connect to the socket at `path`.
    pub fn connect(path: &Path) -> Result<Client, ClientError> {
        let stream = UnixStream::connect(path).map_err(|source| ClientError::Connect {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Client {
            stream,
            path: path.to_path_buf(),
        })
    }

    /// Send one request without reading the answer.
    pub fn send(&mut self, req: Request) -> Result<(), ClientError> {
        frame::write_frame(&mut self.stream, &RequestEnvelope::new(req)).map_err(|e| {
            ClientError::Frame {
                path: self.path.clone(),
                source: e.into(),
            }
        })
    }

    /// Read one response.
    pub fn recv(&mut self) -> Result<Response, ClientError> {
        let bytes = frame::read_frame(&mut self.stream, MAX_RESPONSE).map_err(|source| {
            ClientError::Frame {
                path: self.path.clone(),
                source,
            }
        })?;
        let env: ResponseEnvelope =
            serde_json::from_slice(&bytes).map_err(|e| ClientError::BadResponse(e.to_string()))?;
        Ok(env.response)
    }

    /// Send a request and read one response (errors stay a `Response::Error`).
    pub fn call(&mut self, req: Request) -> Result<Response, ClientError> {
        self.send(req)?;
        self.recv()
    }

    /// Submit a task; returns its id.
    pub fn submit(&mut self, r: SubmitRequest) -> Result<u64, ClientError> {
        expect!(self.call(Request::Submit(r))?, Submitted).map(|s| s.id)
    }

    /// Submit many tasks over this connection with up to `depth` requests in
    /// flight (the daemon answers in order; submits that arrive together share
    /// one commit, so this is much faster than calling [`Client::submit`] in a
    /// loop when each commit waits for an fsync). Every id is still returned only
    /// after its task is durable. One result per request, in order: the id, or
    /// the daemon's refusal of that task. `Err` only when the connection fails.
    pub fn submit_pipelined(
        &mut self,
        reqs: impl IntoIterator<Item = SubmitRequest>,
        depth: usize,
    ) -> Result<Vec<Result<u64, ErrorResponse>>, ClientError> {
        let depth = depth.max(1);
        let mut out = Vec::new();
        let mut in_flight = 0usize;
        let take = |c: &mut Self, out: &mut Vec<Result<u64, ErrorResponse>>| {
            match c.recv()? {
                Response::Submitted(s) => out.push(Ok(s.id)),
                Response::Error(e) => out.push(Err(e)),
                other => return Err(ClientError::Unexpected(format!("{other:?}"))),
            }
            Ok::<(), ClientError>(())
        };
        for r in reqs {
            if in_flight == depth {
                take(self, &mut out)?;
                in_flight -= 1;
            }
            self.send(Request::Submit(r))?;
            in_flight += 1;
        }
        for _ in 0..in_flight {
            take(self, &mut out)?;
        }
        Ok(out)
    }

    /// One task.
    pub fn status(&mut self, id: u64) -> Result<TaskInfo, ClientError> {
        expect!(self.call(Request::Status(StatusRequest { id }))?, Task)
    }

    /// Tasks.
    pub fn list(&mut self, r: ListRequest) -> Result<Vec<TaskInfo>, ClientError> {
        expect!(self.call(Request::List(r))?, Tasks).map(|l| l.tasks)
    }

    /// Wait for a task to finish.
    pub fn wait(&mut self, id: u64, timeout_ms: Option<u64>) -> Result<TaskInfo, ClientError> {
        expect!(
            self.call(Request::Wait(WaitRequest { id, timeout_ms }))?,
            Task
        )
    }

    /// Cancel a task.
    pub fn cancel(&mut self, id: u64) -> Result<TaskInfo, ClientError> {
        expect!(self.call(Request::Cancel(CancelRequest { id }))?, Task)
    }

    /// Read logs; with `follow`, `on_chunk` is called for each chunk until the end.
    pub fn logs(
        &mut self,
        r: LogsRequest,
        mut on_chunk: impl FnMut(&LogChunk),
    ) -> Result<(), ClientError> {
        let follow = r.follow;
        self.send(Request::Logs(r))?;
        loop {
            let c = expect!(self.recv()?, LogChunk)?;
            on_chunk(&c);
            if !follow || c.eof {
                return Ok(());
            }
        }
    }

    /// Node, queue and policy figures.
    pub fn stats(&mut self, tasks: bool) -> Result<StatsResponse, ClientError> {
        expect!(self.call(Request::Stats(StatsRequest { tasks }))?, Stats)
    }

    /// The policy.
    pub fn policy_get(&mut self) -> Result<PolicyResponse, ClientError> {
        expect!(self.call(Request::PolicyGet(PolicyGetRequest {}))?, Policy)
    }

    /// Switch policy.
    pub fn policy_set(&mut self, spec: &str) -> Result<PolicyResponse, ClientError> {
        expect!(
            self.call(Request::PolicySet(PolicySetRequest { spec: spec.into() }))?,
            Policy
        )
    }

    /// Why a task is pending.
    pub fn explain(&mut self, id: u64) -> Result<ExplainResponse, ClientError> {
        expect!(self.call(Request::Explain(ExplainRequest { id }))?, Explain)
    }

    /// All feedback records (pages through the history).
    pub fn history_all(&mut self) -> Result<Vec<HistoryRecord>, ClientError> {
        let mut out: Vec<HistoryRecord> = Vec::new();
        loop {
            let after_id = out.last().map(|r| r.task.id);
            let page = expect!(
                self.call(Request::History(HistoryRequest {
                    after_id,
                    limit: None
                }))?,
                History
            )?;
            out.extend(page.records);
            if !page.more {
                return Ok(out);
            }
        }
    }

    /// The raw stream (tests send malformed bytes through it).
    pub fn stream(&mut self) -> &mut UnixStream {
        &mut self.stream
    }
}
