//! `logs`: read a task's stdout or stderr file; with `follow`, keep sending
//! chunks until the task has finished and everything was sent. Following polls
//! the file every 50 ms (log following only; scheduling never polls).

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::{forbidden, not_found, Caller, Reply};
use crate::protocol::{ErrorCode, LogChunk, LogStream, LogsRequest, Response, TaskState};
use crate::state::Shared;

/// Largest chunk read at once (JSON escaping can grow it up to 6×; the result stays under one frame).
pub const CHUNK: u64 = 128 * 1024;

/// Read up to [`CHUNK`] bytes at `offset`. A missing file reads as empty.
fn read_at(path: &Path, offset: u64) -> std::io::Result<(Vec<u8>, u64)> {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    if offset >= len {
        return Ok((Vec::new(), len));
    }
    f.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::new();
    f.take(CHUNK).read_to_end(&mut buf)?;
    Ok((buf, len))
}

/// Offset where the last `n` lines start.
fn tail_offset(path: &Path, n: u32) -> std::io::Result<u64> {
    let data = match std::fs::read(path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut end = data.len();
    if data.last() == Some(&b'\n') {
        end -= 1;
    }
    let mut seen = 0;
    for i in (0..end).rev() {
        if data[i] == b'\n' {
            seen += 1;
            if seen == n {
                return Ok(i as u64 + 1);
            }
        }
    }
    Ok(0)
}

/// Handle a logs request.
pub async fn handle(shared: &Arc<Shared>, caller: Caller, r: LogsRequest) -> Reply {
    {
        let st = shared.lock();
        let Some(t) = st.tasks.get(&r.id) else {
            return Reply::One(not_found(r.id));
        };
        if !caller.owns(t) {
            return Reply::One(forbidden(r.id, t.row.info.uid, caller));
        }
    }
    let (out, err) = shared.log_paths(r.id);
    let path = match r.stream {
        LogStream::Stdout => out,
        LogStream::Stderr => err,
    };
    let offset = match (r.offset, r.tail_lines) {
        (Some(o), _) => o,
        (None, Some(n)) => match tail_offset(&path, n) {
            Ok(o) => o,
            Err(e) => return Reply::One(io_err(&path, e)),
        },
        (None, None) => 0,
    };
    let id = r.id;
    let finished = move |shared: &Arc<Shared>| {
        shared
            .lock()
            .tasks
            .get(&id)
            .map_or(true, |t| t.row.info.state == TaskState::Finished)
    };
    if !r.follow || caller.http {
        let done = finished(shared);
        return Reply::One(match read_at(&path, offset) {
            Ok((data, len)) => chunk(&r, offset, &data, done && offset + data.len() as u64 >= len),
            Err(e) => io_err(&path, e),
        });
    }
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let shared = Arc::clone(shared);
    tokio::spawn(async move {
        let mut offset = offset;
        loop {
            // Check "finished" before reading, so output written just before the exit is not missed.
            let done = finished(&shared);
            let resp = match read_at(&path, offset) {
                Ok((data, len)) => {
                    let eof = done && offset + data.len() as u64 >= len;
                    if data.is_empty() && !eof {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                    let c = chunk(&r, offset, &data, eof);
                    offset += data.len() as u64;
                    c
                }
                Err(e) => io_err(&path, e),
            };
            let end = !matches!(&resp, Response::LogChunk(c) if !c.eof);
            if tx.send(resp).await.is_err() || end {
                return;
            }
        }
    });
    Reply::Stream(rx)
}

fn chunk(r: &LogsRequest, offset: u64, data: &[u8], eof: bool) -> Response {
    Response::LogChunk(LogChunk {
        id: r.id,
        stream: r.stream,
        offset,
        data: String::from_utf8_lossy(data).into_owned(),
        next_offset: offset + data.len() as u64,
        eof,
    })
}

fn io_err(path: &Path, e: std::io::Error) -> Response {
    Response::error(
        ErrorCode::Internal,
        format!("cannot read {}: {e}", path.display()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        std::fs::write(&p, "a\nbb\nccc\n").unwrap();
        assert_eq!(tail_offset(&p, 1).unwrap(), 5);
        assert_eq!(tail_offset(&p, 2).unwrap(), 2);
        assert_eq!(tail_offset(&p, 9).unwrap(), 0);
        std::fs::write(&p, "a\nbb").unwrap();
        assert_eq!(tail_offset(&p, 1).unwrap(), 2);
        assert_eq!(tail_offset(&dir.path().join("missing"), 3).unwrap(), 0);
    }
}
