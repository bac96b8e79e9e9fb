//! `policy_get` / `policy_set`: which policy schedules; switching it (root or the daemon's uid).

use std::sync::Arc;

use super::Caller;
use crate::protocol::{ErrorCode, PolicyGetRequest, PolicyResponse, PolicySetRequest, Response};
use crate::state::{Event, Shared};

/// Handle a policy-get request.
pub fn get(shared: &Arc<Shared>, _caller: Caller, _r: PolicyGetRequest) -> Response {
    let st = shared.lock();
    Response::Policy(PolicyResponse {
        spec: st.policy_spec.clone(),
        name: st.policy_name.clone(),
    })
}

/// Handle a policy-set request: the scheduler thread builds the new policy and swaps it in.
pub async fn set(shared: &Arc<Shared>, caller: Caller, r: PolicySetRequest) -> Response {
    if caller.uid != 0 && caller.uid != shared.uid {
        return Response::error(
            ErrorCode::Forbidden,
            format!(
                "only root or the daemon's uid {} may change the policy",
                shared.uid
            ),
        );
    }
    let (reply, rx) = tokio::sync::oneshot::channel();
    shared.send(Event::SetPolicy {
        spec: r.spec.clone(),
        reply,
    });
    match rx.await {
        Ok(Ok(p)) => Response::Policy(p),
        Ok(Err(e)) => Response::error(
            ErrorCode::Invalid,
            format!("cannot build policy {:?}: {e}", r.spec),
        ),
        Err(_) => Response::error(ErrorCode::Unavailable, "the scheduler has stopped"),
    }
}
