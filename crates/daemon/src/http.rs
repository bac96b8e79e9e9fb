//! The optional loopback HTTP listener (axum): the same requests as JSON
//! endpoints (documented in `docs/openapi.yaml`) plus Prometheus `/metrics`.
//! Every route needs `Authorization: Bearer <token>` (compared in constant
//! time); requests act with the daemon's own uid.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Path, Query, Request as HttpRequest, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use crate::error::DaemonError;
use crate::handlers::{self, Caller, Reply};
use crate::protocol::*;
use crate::state::Shared;

/// Compare two byte strings in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u64;
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= u64::from(x ^ y);
    }
    diff == 0
}

#[derive(Clone)]
struct App {
    shared: Arc<Shared>,
    token: Arc<String>,
}

fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::BadFrame
        | ErrorCode::BadRequest
        | ErrorCode::Invalid
        | ErrorCode::VersionMismatch => StatusCode::BAD_REQUEST,
        ErrorCode::FrameTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn reply(r: Response) -> HttpResponse {
    let status = match &r {
        Response::Error(e) => status_of(e.code),
        _ => StatusCode::OK,
    };
    (status, Json(r)).into_response()
}

async fn run(app: &App, req: Request) -> HttpResponse {
    let caller = Caller {
        uid: app.shared.uid,
        http: true,
    };
    match handlers::dispatch(&app.shared, caller, req).await {
        Reply::One(r) => reply(r),
        Reply::Stream(mut rx) => match rx.recv().await {
            Some(r) => reply(r),
            None => reply(Response::error(ErrorCode::Internal, "empty stream")),
        },
    }
}

async fn auth(State(app): State<App>, req: HttpRequest, next: Next) -> HttpResponse {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if given.is_empty() || !constant_time_eq(given.as_bytes(), app.token.as_bytes()) {
        let mut r = reply(Response::error(
            ErrorCode::Unauthorized,
            "missing or wrong bearer token",
        ));
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
        return r;
    }
    next.run(req).await
}

async fn generic(State(app): State<App>, body: axum::body::Bytes) -> HttpResponse {
    match parse_request(&body) {
        Ok(req) => {
            let caller = Caller {
                uid: app.shared.uid,
                http: true,
            };
            let r = match handlers::dispatch(&app.shared, caller, req).await {
                Reply::One(r) => r,
                Reply::Stream(mut rx) => rx
                    .recv()
                    .await
                    .unwrap_or(Response::error(ErrorCode::Internal, "empty stream")),
            };
            let status = match &r {
                Response::Error(e) => status_of(e.code),
                _ => StatusCode::OK,
            };
            (status, Json(ResponseEnvelope::new(r))).into_response()
        }
        Err(e) => (
            status_of(e.code),
            Json(ResponseEnvelope::new(Response::Error(e))),
        )
            .into_response(),
    }
}

fn bad_body(e: impl std::fmt::Display) -> HttpResponse {
    reply(Response::error(
        ErrorCode::BadRequest,
        format!("invalid body: {e}"),
    ))
}

async fn submit(State(app): State<App>, body: axum::body::Bytes) -> HttpResponse {
    match serde_json::from_slice::<SubmitRequest>(&body) {
        Ok(r) => run(&app, Request::Submit(r)).await,
        Err(e) => bad_body(e),
    }
}

async fn list(State(app): State<App>, Query(q): Query<ListRequest>) -> HttpResponse {
    run(&app, Request::List(q)).await
}

async fn status(State(app): State<App>, Path(id): Path<u64>) -> HttpResponse {
    run(&app, Request::Status(StatusRequest { id })).await
}

#[derive(Deserialize)]
struct WaitQuery {
    timeout_ms: Option<u64>,
}

async fn wait(
    State(app): State<App>,
    Path(id): Path<u64>,
    Query(q): Query<WaitQuery>,
) -> HttpResponse {
    run(
        &app,
        Request::Wait(WaitRequest {
            id,
            timeout_ms: q.timeout_ms,
        }),
    )
    .await
}

async fn cancel(State(app): State<App>, Path(id): Path<u64>) -> HttpResponse {
    run(&app, Request::Cancel(CancelRequest { id })).await
}

#[derive(Deserialize)]
struct LogsQuery {
    #[serde(default)]
    stream: LogStream,
    offset: Option<u64>,
    tail_lines: Option<u32>,
}

async fn logs(
    State(app): State<App>,
    Path(id): Path<u64>,
    Query(q): Query<LogsQuery>,
) -> HttpResponse {
    run(
        &app,
        Request::Logs(LogsRequest {
            id,
            stream: q.stream,
            offset: q.offset,
            tail_lines: q.tail_lines,
            follow: false,
        }),
    )
    .await
}

async fn explain(State(app): State<App>, Path(id): Path<u64>) -> HttpResponse {
    run(&app, Request::Explain(ExplainRequest { id })).await
}

async fn stats(State(app): State<App>, Query(q): Query<StatsRequest>) -> HttpResponse {
    run(&app, Request::Stats(q)).await
}

async fn policy_get(State(app): State<App>) -> HttpResponse {
    run(&app, Request::PolicyGet(PolicyGetRequest {})).await
}

async fn policy_set(State(app): State<App>, body: axum::body::Bytes) -> HttpResponse {
    match serde_json::from_slice::<PolicySetRequest>(&body) {
        Ok(r) => run(&app, Request::PolicySet(r)).await,
        Err(e) => bad_body(e),
    }
}

async fn history(State(app): State<App>, Query(q): Query<HistoryRequest>) -> HttpResponse {
    run(&app, Request::History(q)).await
}

async fn metrics(State(app): State<App>) -> HttpResponse {
    let text = {
        let st = app.shared.lock();
        let q = handlers::stats::queue_stats(&st);
        st.metrics.render(q.queued, q.held, q.running)
    };
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// The router (exposed for tests that drive it without a socket).
fn router(app: App, max_body: usize) -> Router {
    Router::new()
        .route("/v1/request", post(generic))
        .route("/v1/tasks", post(submit).get(list))
        .route("/v1/tasks/{id}", get(status))
        .route("/v1/tasks/{id}/wait", post(wait))
        .route("/v1/tasks/{id}/cancel", post(cancel))
        .route("/v1/tasks/{id}/logs", get(logs))
        .route("/v1/tasks/{id}/explain", get(explain))
        .route("/v1/stats", get(stats))
        .route("/v1/policy", get(policy_get).put(policy_set))
        .route("/v1/history", get(history))
        .route("/metrics", get(metrics))
        .layer(middleware::from_fn_with_state(app.clone(), auth))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(app)
}

/// Bind the HTTP listener (loopback addresses only).
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, DaemonError> {
    if !addr.ip().is_loopback() {
        return Err(DaemonError::Config(format!(
            "HTTP address {addr} is not a loopback address; the HTTP API listens on loopback only"
        )));
    }
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| DaemonError::Io {
            what: "bind HTTP listener",
            path: addr.to_string().into(),
            source,
        })
}

/// Serve HTTP until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, shared: Arc<Shared>, token: String) {
    let max = shared.config.max_frame;
    let app = App {
        shared,
        token: Arc::new(token),
    };
    if let Err(e) = axum::serve(listener, router(app, max)).await {
        tracing::error!("HTTP listener stopped: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn token_compare() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
    }
}
