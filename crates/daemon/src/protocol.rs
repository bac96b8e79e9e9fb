//! The wire protocol: one versioned [`Request`] enum and one [`Response`] enum,
//! each variant wrapping a named, documented struct. The same JSON values
//! travel inside length-prefixed frames on the Unix socket (see
//! [`crate::frame`]) and as HTTP bodies (see `docs/openapi.yaml`).
//!
//! A request on the wire is an envelope `{"version": 1, "request": {"type": "submit", ...}}`;
//! a response is `{"version": 1, "response": {"type": "submitted", ...}}`.
//! Unknown fields are rejected so typos fail loudly.

use std::collections::BTreeMap;

use llmchain_core::{ExitStatus, PolicyStats};
use serde::{Deserialize, Serialize};

/// The protocol version this build speaks. A request with another version
/// gets [`ErrorCode::VersionMismatch`].
pub const PROTOCOL_VERSION: u32 = 1;

/// What a client sends: a version and one request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestEnvelope {
    /// Must equal [`PROTOCOL_VERSION`].
    pub version: u32,
    /// The request.
    pub request: Request,
}

/// What the daemon sends back: a version and one response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseEnvelope {
    /// Always [`PROTOCOL_VERSION`].
    pub version: u32,
    /// The response.
    pub response: Response,
}

/// Every request the daemon understands. Dispatch is one exhaustive `match`
/// in [`crate::handlers::dispatch`], one handler file per variant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    /// Queue a new task. Answer: [`Response::Submitted`].
    Submit(SubmitRequest),
    /// One task's state. Answer: [`Response::Task`].
    Status(StatusRequest),
    /// Many tasks' states. Answer: [`Response::Tasks`].
    List(ListRequest),
    /// Block until a task has finished. Answer: [`Response::Task`].
    Wait(WaitRequest),
    /// Cancel a queued or running task. Answer: [`Response::Task`].
    Cancel(CancelRequest),
    /// Read a task's output. Answer: one or more [`Response::LogChunk`].
    Logs(LogsRequest),
    /// Node telemetry, queue and policy figures. Answer: [`Response::Stats`].
    Stats(StatsRequest),
    /// Which policy is scheduling. Answer: [`Response::Policy`].
    PolicyGet(PolicyGetRequest),
    /// Switch policy. Answer: [`Response::Policy`].
    PolicySet(PolicySetRequest),
    /// Why is a task pending. Answer: [`Response::Explain`].
    Explain(ExplainRequest),
    /// Finished tasks with their outcomes (feedback records). Answer: [`Response::History`].
    History(HistoryRequest),
}

/// Every response. Any request may instead get [`Response::Error`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Response {
    /// The task was accepted and is durable.
    Submitted(SubmitResponse),
    /// One task.
    Task(TaskInfo),
    /// Several tasks.
    Tasks(TaskList),
    /// A piece of a task's output.
    LogChunk(LogChunk),
    /// Node, queue and policy figures.
    Stats(StatsResponse),
    /// The current policy.
    Policy(PolicyResponse),
    /// Why a task is (not) pending.
    Explain(ExplainResponse),
    /// Feedback records.
    History(HistoryResponse),
    /// The request failed.
    Error(ErrorResponse),
}

/// Queue a task: what to run, where, and what it needs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitRequest {
    /// Program and arguments; `argv[0]` is looked up in `PATH` of `env`.
    pub argv: Vec<String>,
    /// Working directory (absolute). Default: the daemon's state directory.
    #[serde(default)]
    pub cwd: Option<String>,
    /// The task's complete environment (nothing else is inherited).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// CPU in millicores (1000 = one core); enforced as a CFS quota.
    pub cpu_millis: u64,
    /// Memory limit in MiB; enforced by the memory cgroup (exceeding it is an OOM kill).
    pub mem_mib: u64,
    /// The user's runtime estimate in milliseconds, if any (policies like SJF and EASY use it).
    #[serde(default)]
    pub estimate_ms: Option<u64>,
    /// Priority hint, higher = sooner (policies may ignore it).
    #[serde(default)]
    pub priority: i32,
    /// Short task name for listings. Untrusted text, shown quoted.
    #[serde(default)]
    pub name: Option<String>,
    /// Free-form user label (project, experiment...). Untrusted text.
    #[serde(default)]
    pub label: Option<String>,
    /// Tasks that must complete successfully first. If one fails, is
    /// cancelled or lost, this task is cancelled with a reason.
    #[serde(default)]
    pub after: Vec<u64>,
}

/// The id of an accepted task. Returned only once the task is committed to the state database.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitResponse {
    /// The new task's id.
    pub id: u64,
}

/// Ask for one task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusRequest {
    /// The task.
    pub id: u64,
}

/// Ask for many tasks, newest last.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListRequest {
    /// Include finished tasks (default: only queued and running).
    #[serde(default)]
    pub all: bool,
    /// At most this many (the newest); default 1000.
    #[serde(default)]
    pub limit: Option<u32>,
    /// Only tasks of this uid.
    #[serde(default)]
    pub uid: Option<u32>,
}

/// Block until a task has finished.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitRequest {
    /// The task.
    pub id: u64,
    /// Give up after this many milliseconds and return the task as it is.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

/// Cancel a task (queued: removed from the queue; running: its whole process tree is killed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    /// The task.
    pub id: u64,
}

/// Which output file.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogStream {
    /// Standard output.
    #[default]
    Stdout,
    /// Standard error.
    Stderr,
}

/// Read a task's output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogsRequest {
    /// The task.
    pub id: u64,
    /// Which stream.
    #[serde(default)]
    pub stream: LogStream,
    /// Start at this byte offset (default: 0, or the tail when `tail_lines` is set).
    #[serde(default)]
    pub offset: Option<u64>,
    /// Only the last N lines.
    #[serde(default)]
    pub tail_lines: Option<u32>,
    /// Keep sending chunks as output appears until the task has finished
    /// (Unix socket only; over HTTP poll with `offset`).
    #[serde(default)]
    pub follow: bool,
}

/// Ask for node, queue and policy figures.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsRequest {
    /// Also list the running tasks with their live usage.
    #[serde(default)]
    pub tasks: bool,
}

/// Ask which policy is scheduling.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyGetRequest {}

/// Switch the scheduling policy (root or the daemon's own uid only).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySetRequest {
    /// A policy spec such as `fcfs`, `sjf+easy` or `kernel:...`.
    pub spec: String,
}

/// Why is a task pending?
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExplainRequest {
    /// The task.
    pub id: u64,
}

/// Ask for finished tasks with outcomes, oldest first, in pages.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryRequest {
    /// Only tasks with id greater than this.
    #[serde(default)]
    pub after_id: Option<u64>,
    /// At most this many records (default and maximum 1000).
    #[serde(default)]
    pub limit: Option<u32>,
}

/// Where a task is in its life.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// Accepted, waiting for resources, the policy or its dependencies.
    Queued,
    /// Its process is running.
    Running,
    /// Ended; see [`TaskInfo::exit`].
    Finished,
}

impl TaskState {
    /// Lower-case name as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Queued => "queued",
            TaskState::Running => "running",
            TaskState::Finished => "finished",
        }
    }
}

/// Everything known about one task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskInfo {
    /// Its id.
    pub id: u64,
    /// Uid of the submitter (from the socket's peer credentials).
    pub uid: u32,
    /// Name given at submit.
    pub name: Option<String>,
    /// Label given at submit.
    pub label: Option<String>,
    /// Command (empty when the caller may not see it: another user's task).
    pub argv: Vec<String>,
    /// Working directory (empty for another user's task).
    pub cwd: String,
    /// CPU millicores requested.
    pub cpu_millis: u64,
    /// Memory MiB requested.
    pub mem_mib: u64,
    /// Runtime estimate, ms.
    pub estimate_ms: Option<u64>,
    /// Priority hint.
    pub priority: i32,
    /// Dependencies.
    pub after: Vec<u64>,
    /// Queued, running or finished.
    pub state: TaskState,
    /// How it ended (finished tasks only).
    pub exit: Option<ExitStatus>,
    /// Why it ended that way, when the daemon knows more (lost, cancelled, dependency failed, spawn error).
    pub reason: Option<String>,
    /// Submitted at, microseconds since the Unix epoch.
    pub submit_us: u64,
    /// Started at, µs since the Unix epoch.
    pub start_us: Option<u64>,
    /// Ended at, µs since the Unix epoch.
    pub end_us: Option<u64>,
    /// Process id of the task's main process (kept after it ends, for the record).
    pub pid: Option<u32>,
    /// CPU time used, ms (finished tasks).
    pub cpu_time_ms: Option<u64>,
    /// Peak memory, MiB (finished tasks, when the cgroup reported it).
    pub peak_mem_mib: Option<u64>,
}

/// Several tasks, ascending id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskList {
    /// The tasks.
    pub tasks: Vec<TaskInfo>,
}

/// A piece of a task's output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogChunk {
    /// The task.
    pub id: u64,
    /// Which stream.
    pub stream: LogStream,
    /// Byte offset of `data` in the log file.
    pub offset: u64,
    /// The bytes, decoded as UTF-8 with replacement characters.
    pub data: String,
    /// Offset to ask for next.
    pub next_offset: u64,
    /// The task has finished and all its output has been sent.
    pub eof: bool,
}

/// Counts of tasks by state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueStats {
    /// Waiting and eligible (dependencies met).
    pub queued: u64,
    /// Waiting for dependencies.
    pub held: u64,
    /// Running.
    pub running: u64,
    /// Finished since the daemon started (including recovered ones).
    pub finished: u64,
}

/// Counters since the daemon started.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Counters {
    /// Accepted submits.
    pub submits: u64,
    /// Tasks started.
    pub starts: u64,
    /// Finished tasks by status (`completed`, `failed`, `oom_killed`, ...).
    pub completions: BTreeMap<String, u64>,
    /// Decision points.
    pub decision_points: u64,
    /// Proposals the validator refused.
    pub rejected_proposals: u64,
}

/// Latency of one decision point (snapshot + decide + validate), microseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencyStats {
    /// Samples (the last 4096 decision points).
    pub count: u64,
    /// Median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// Maximum.
    pub max_us: f64,
}

/// A resource amount in the daemon's units.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Amount {
    /// CPU millicores.
    pub cpu_millis: u64,
    /// Memory MiB.
    pub mem_mib: u64,
    /// GPUs.
    pub gpus: u64,
}

/// The node as the scheduler sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeStats {
    /// Host name.
    pub hostname: String,
    /// Schedulable capacity.
    pub capacity: Amount,
    /// Capacity minus the requests of running tasks.
    pub free: Amount,
    /// How limits are enforced: `v2` or `v1` (cgroups), `none` (rlimits and CPU affinity).
    pub enforcement: String,
    /// Machine telemetry (CPU utilisation, load, memory, PSI) as the node crate reports it.
    pub telemetry: serde_json::Value,
}

/// Live usage of one running task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunningUsage {
    /// The task.
    pub id: u64,
    /// Owner uid.
    pub uid: u32,
    /// Name.
    pub name: Option<String>,
    /// Main pid.
    pub pid: Option<u32>,
    /// Running for, ms.
    pub elapsed_ms: u64,
    /// CPU millicores held.
    pub cpu_millis: u64,
    /// Memory MiB held.
    pub mem_mib: u64,
    /// CPU time used so far, ms (when the cgroup reports it).
    pub cpu_time_ms: Option<u64>,
    /// Current memory, MiB (when the cgroup reports it).
    pub mem_used_mib: Option<u64>,
}

/// Node, queue and policy figures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsResponse {
    /// Daemon version.
    pub daemon_version: String,
    /// Since start, ms.
    pub uptime_ms: u64,
    /// The node.
    pub node: NodeStats,
    /// Queue counts.
    pub queue: QueueStats,
    /// Counters.
    pub counters: Counters,
    /// The policy's name.
    pub policy: String,
    /// The policy's own figures.
    pub policy_stats: PolicyStats,
    /// Decision latency.
    pub decision_latency: LatencyStats,
    /// Running tasks with live usage (when asked for).
    pub running: Vec<RunningUsage>,
}

/// The policy in force.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyResponse {
    /// The spec it was built from.
    pub spec: String,
    /// Its name.
    pub name: String,
}

/// A dimension in which a task does not fit now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shortfall {
    /// `cpu`, `mem` or `gpu`.
    pub dim: String,
    /// Unit of the numbers.
    pub unit: String,
    /// What the task needs.
    pub need: u64,
    /// Free now.
    pub free: u64,
    /// Node capacity.
    pub capacity: u64,
}

/// A task ahead of another in the queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AheadTask {
    /// Its id.
    pub id: u64,
    /// Its owner.
    pub uid: u32,
    /// CPU millicores.
    pub cpu_millis: u64,
    /// Memory MiB.
    pub mem_mib: u64,
    /// Priority.
    pub priority: i32,
}

/// Why a task is (not) pending.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExplainResponse {
    /// The task.
    pub id: u64,
    /// Its state.
    pub state: TaskState,
    /// One-paragraph human summary.
    pub summary: String,
    /// The policy deciding.
    pub policy: String,
    /// Dimensions in which it does not fit now (empty when it fits).
    pub blocked_by: Vec<Shortfall>,
    /// Dependencies not yet completed.
    pub unmet_deps: Vec<u64>,
    /// Number of eligible queued tasks ahead of it in the policy's current order.
    pub ahead_count: u64,
    /// The first (up to 20) of those, in that order.
    pub ahead: Vec<AheadTask>,
    /// Which order `ahead` follows: the policy's own description of its order
    /// (e.g. "priority order of `sjf` ...; EASY backfilling: ..."), or a note
    /// that the policy keeps none and submission order is shown instead.
    #[serde(default)]
    pub order: String,
    /// Its position in that order (0 = first), when it is eligible.
    #[serde(default)]
    pub position: Option<u64>,
    /// What the policy last said about it — for a kernel, the language model's
    /// last answer that placed or dropped it (and its rationale), or why it
    /// fell back. Absent when the policy says nothing.
    #[serde(default)]
    pub policy_remark: Option<String>,
    /// The validator's last refusal of a proposal to start it, if any.
    pub last_rejection: Option<String>,
}

/// One finished task with its request and outcome: a feedback record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryRecord {
    /// The task (request and outcome fields).
    pub task: TaskInfo,
    /// Whether the kernel OOM-killed it.
    pub oom: bool,
    /// Run time, ms (end − start; 0 when it never started).
    pub runtime_ms: u64,
}

/// A page of feedback records.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryResponse {
    /// Records, ascending id.
    pub records: Vec<HistoryRecord>,
    /// More records follow (ask again with `after_id` = last id).
    pub more: bool,
}

/// Machine-readable error kind.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// The frame was malformed (bad length, truncated, not JSON).
    BadFrame,
    /// The frame exceeds the maximum size.
    FrameTooLarge,
    /// The envelope has another protocol version.
    VersionMismatch,
    /// The request is not a valid request (unknown type, bad field).
    BadRequest,
    /// The request is well-formed but refused (impossible size, unknown dependency...).
    Invalid,
    /// No such task.
    NotFound,
    /// The caller may not do this to this task.
    Forbidden,
    /// The HTTP bearer token is missing or wrong.
    Unauthorized,
    /// The daemon is shutting down or a subsystem failed.
    Unavailable,
    /// Something broke inside the daemon.
    Internal,
}

/// A failed request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorResponse {
    /// Kind.
    pub code: ErrorCode,
    /// What went wrong, for people.
    pub message: String,
}

impl Response {
    /// An error response.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        Response::Error(ErrorResponse {
            code,
            message: message.into(),
        })
    }
}

impl RequestEnvelope {
    /// Wrap a request with the current version.
    pub fn new(request: Request) -> Self {
        RequestEnvelope {
            version: PROTOCOL_VERSION,
            request,
        }
    }
}

impl ResponseEnvelope {
    /// Wrap a response with the current version.
    pub fn new(response: Response) -> Self {
        ResponseEnvelope {
            version: PROTOCOL_VERSION,
            response,
        }
    }
}

/// Parse one request envelope from JSON bytes: checks the version first so
/// an old or new client gets [`ErrorCode::VersionMismatch`], not a parse error.
pub fn parse_request(bytes: &[u8]) -> Result<Request, ErrorResponse> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| ErrorResponse {
        code: ErrorCode::BadFrame,
        message: format!("request is not JSON: {e}"),
    })?;
    let version = value.get("version").ok_or_else(|| ErrorResponse {
        code: ErrorCode::BadRequest,
        message: "request envelope has no \"version\" field".into(),
    })?;
    if version.as_u64() != Some(u64::from(PROTOCOL_VERSION)) {
        return Err(ErrorResponse {
            code: ErrorCode::VersionMismatch,
            message: format!(
                "protocol version {version} is not supported; this daemon speaks version {PROTOCOL_VERSION}"
            ),
        });
    }
    let env: RequestEnvelope = serde_json::from_value(value).map_err(|e| ErrorResponse {
        code: ErrorCode::BadRequest,
        message: format!("invalid request: {e}"),
    })?;
    Ok(env.request)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_round_trips_and_is_tagged() {
        let r = Request::Submit(SubmitRequest {
            argv: vec!["true".into()],
            cpu_millis: 1000,
            mem_mib: 64,
            ..Default::default()
        });
        let bytes = serde_json::to_vec(&RequestEnvelope::new(r.clone())).unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.contains("\"type\":\"submit\""), "{text}");
        assert_eq!(parse_request(&bytes).unwrap(), r);
    }

    #[test]
    fn version_and_shape_errors_are_distinguished() {
        let e = parse_request(br#"{"version":2,"request":{"type":"stats"}}"#).unwrap_err();
        assert_eq!(e.code, ErrorCode::VersionMismatch);
        let e = parse_request(br#"{"version":1,"request":{"type":"nope"}}"#).unwrap_err();
        assert_eq!(e.code, ErrorCode::BadRequest);
        let e = parse_request(br#"{"version":1,"request":{"type":"status","id":1,"extra":2}}"#)
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::BadRequest);
        let e = parse_request(b"{nope").unwrap_err();
        assert_eq!(e.code, ErrorCode::BadFrame);
        assert!(parse_request(br#"{"version":1,"request":{"type":"stats"}}"#).is_ok());
    }
}
