//! Non-Linux stand-ins for the platform layer: discovery and execution report
//! `Unsupported`; signal helpers do nothing. LLMChain's node layer needs Linux.

use std::io;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::NodeError;

pub(crate) fn affinity() -> Result<Vec<u32>, NodeError> {
    Err(NodeError::Unsupported {
        what: "CPU affinity discovery",
    })
}

pub(crate) fn kill_pid(_pid: u32, _sig: i32) {}

pub(crate) fn kill_group(_pgid: u32, _sig: i32) {}

// Filled by the executor, read only by the Linux implementation.
#[allow(dead_code)]
#[derive(Debug, Default)]
pub(crate) struct ChildSetup {
    pub procs: Vec<PathBuf>,
    pub rlimit_data: Option<u64>,
    pub cpus: Option<Vec<u32>>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub groups: Vec<u32>,
    pub cwd: Option<PathBuf>,
}

pub(crate) fn spawn(_cmd: &mut Command, _setup: ChildSetup) -> io::Result<u32> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "the LLMChain executor needs Linux",
    ))
}

pub(crate) fn wait_exit(_pid: u32) -> Result<(), NodeError> {
    Err(NodeError::Unsupported {
        what: "waiting for tasks",
    })
}

#[derive(Copy, Clone, Debug)]
pub(crate) struct Reaped {
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub cpu_time: Duration,
    pub maxrss_kib: u64,
}

pub(crate) fn reap(_pid: u32) -> Result<Reaped, NodeError> {
    Err(NodeError::Unsupported {
        what: "waiting for tasks",
    })
}

pub(crate) fn user_groups(_uid: u32) -> Result<(u32, Vec<u32>), NodeError> {
    Err(NodeError::Unsupported {
        what: "running tasks as another user",
    })
}

pub(crate) fn proc_usage(_pid: u32) -> Option<(Duration, Option<u64>)> {
    None
}

pub(crate) fn session_of(_pid: u32) -> Option<u32> {
    None
}
