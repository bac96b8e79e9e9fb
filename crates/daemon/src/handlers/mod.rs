//! Request dispatch: one exhaustive `match` over [`Request`], one handler file per request.

use std::sync::Arc;

use crate::protocol::{ErrorCode, Request, Response};
use crate::state::{Shared, Task};

pub mod cancel;
pub mod explain;
pub mod history;
pub mod list;
pub mod logs;
pub mod policy;
pub mod stats;
pub mod status;
pub mod submit;
pub mod wait;

/// Who is asking.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// Uid from the socket's peer credentials; for HTTP, the daemon's own uid
    /// (the bearer token grants the daemon owner's rights).
    pub uid: u32,
    /// Came over HTTP (no streaming replies).
    pub http: bool,
}

impl Caller {
    /// Whether this caller may act on (cancel, wait on, read the logs of) `task`:
    /// its owner or root.
    pub fn owns(&self, task: &Task) -> bool {
        self.uid == 0 || self.uid == task.row.info.uid
    }
}

/// One response, or a stream of them (logs `follow`). Short-lived (one per
/// request), so the size difference between the variants does not matter.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Reply {
    /// A single response.
    One(Response),
    /// Responses until the channel closes.
    Stream(tokio::sync::mpsc::Receiver<Response>),
}

/// Handle one request.
pub async fn dispatch(shared: &Arc<Shared>, caller: Caller, req: Request) -> Reply {
    let one = Reply::One;
    match req {
        Request::Submit(r) => one(submit::handle(shared, caller, r).await),
        Request::Status(r) => one(status::handle(shared, caller, r)),
        Request::List(r) => one(list::handle(shared, caller, r)),
        Request::Wait(r) => one(wait::handle(shared, caller, r).await),
        Request::Cancel(r) => one(cancel::handle(shared, caller, r)),
        Request::Logs(r) => logs::handle(shared, caller, r).await,
        Request::Stats(r) => one(stats::handle(shared, caller, r)),
        Request::PolicyGet(r) => one(policy::get(shared, caller, r)),
        Request::PolicySet(r) => one(policy::set(shared, caller, r).await),
        Request::Explain(r) => one(explain::handle(shared, caller, r).await),
        Request::History(r) => one(history::handle(shared, caller, r)),
    }
}

/// A request's reply, still to be computed (see [`start`]).
pub type PendingReply = std::pin::Pin<Box<dyn std::future::Future<Output = Reply> + Send>>;

/// Begin one request of a pipelined connection: a submit is validated, given
/// its id and queued for the next group commit **now** (so submits sent back to
/// back share a commit); every other request runs when the returned future is
/// polled. The connection polls these futures one after another, in request
/// order, so replies keep the request order and requests other than submit see
/// the effects of the requests before them.
pub fn start(shared: &Arc<Shared>, caller: Caller, req: Request) -> PendingReply {
    let shared = Arc::clone(shared);
    match req {
        Request::Submit(r) => match submit::begin(&shared, caller, r) {
            Ok(p) => Box::pin(async move { Reply::One(submit::finish(&shared, p).await) }),
            Err(resp) => Box::pin(std::future::ready(Reply::One(resp))),
        },
        other => Box::pin(async move { dispatch(&shared, caller, other).await }),
    }
}

pub(crate) fn not_found(id: u64) -> Response {
    Response::error(ErrorCode::NotFound, format!("no task {id}"))
}

pub(crate) fn forbidden(id: u64, owner: u32, caller: Caller) -> Response {
    Response::error(
        ErrorCode::Forbidden,
        format!(
            "task {id} belongs to uid {owner}; uid {} may not act on it",
            caller.uid
        ),
    )
}
