//! Length-prefixed framing: a 4-byte big-endian length, then that many bytes
//! of JSON. Frames longer than [`MAX_FRAME`] are refused before anything is
//! allocated. Blocking helpers for the client; the server's async reader is in
//! [`crate::server`] and uses [`check_len`] and [`FrameError`] from here.

use std::io::{self, Read, Write};

use serde::Serialize;

/// Largest accepted frame payload, bytes (1 MiB).
pub const MAX_FRAME: usize = 1 << 20;

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The length prefix exceeds [`MAX_FRAME`].
    #[error("frame of {len} bytes exceeds the maximum of {max} bytes")]
    TooLarge {
        /// Announced length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The stream ended inside a frame.
    #[error("truncated frame: expected {expected} bytes, got {got}")]
    Truncated {
        /// Bytes announced (payload length, or 4 for the prefix).
        expected: usize,
        /// Bytes received before the end.
        got: usize,
    },
    /// The peer closed the connection cleanly between frames.
    #[error("connection closed")]
    Closed,
    /// Reading or writing failed.
    #[error("frame i/o: {0}")]
    Io(#[from] io::Error),
}

/// Check an announced length against the limit.
pub fn check_len(len: u32, max: usize) -> Result<usize, FrameError> {
    let len = len as usize;
    if len > max {
        Err(FrameError::TooLarge { len, max })
    } else {
        Ok(len)
    }
}

/// Encode `value` as one frame (prefix + JSON).
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing our own protocol types cannot fail (no maps with non-string keys).
    let json = serde_json::to_vec(value)
        .unwrap_or_else(|e| format!("{{\"encode_error\":\"{e}\"}}").into_bytes());
    let mut out = Vec::with_capacity(4 + json.len());
    out.extend_from_slice(&(json.len() as u32).to_be_bytes());
    out.extend_from_slice(&json);
    out
}

/// Write one frame.
pub fn write_frame<W: Write, T: Serialize>(w: &mut W, value: &T) -> io::Result<()> {
    w.write_all(&encode(value))?;
    w.flush()
}

/// Read exactly `buf.len()` bytes, reporting how many arrived before EOF.
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> Result<usize, io::Error> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Read one frame's payload (blocking).
pub fn read_frame<R: Read>(r: &mut R, max: usize) -> Result<Vec<u8>, FrameError> {
    let mut len = [0u8; 4];
    let got = read_full(r, &mut len)?;
    if got == 0 {
        return Err(FrameError::Closed);
    }
    if got < 4 {
        return Err(FrameError::Truncated { expected: 4, got });
    }
    let len = check_len(u32::from_be_bytes(len), max)?;
    let mut buf = vec![0u8; len];
    let got = read_full(r, &mut buf)?;
    if got < len {
        return Err(FrameError::Truncated { expected: len, got });
    }
    Ok(buf)
}

/// Split complete frames off the front of `buf` (for decoders that are fed
/// arbitrary bytes). Returns the payloads found and whether the rest is an
/// incomplete frame (`Ok`) or invalid (`Err`).
pub fn split_frames(mut buf: &[u8], max: usize) -> (Vec<&[u8]>, Result<usize, FrameError>) {
    let mut out = Vec::new();
    loop {
        if buf.len() < 4 {
            return (out, Ok(buf.len()));
        }
        let n = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
        let n = match check_len(n, max) {
            Ok(n) => n,
            Err(e) => return (out, Err(e)),
        };
        if buf.len() < 4 + n {
            return (out, Ok(buf.len()));
        }
        out.push(&buf[4..4 + n]);
        buf = &buf[4 + n..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{parse_request, Request, RequestEnvelope, StatsRequest};
    use proptest::prelude::*;

    #[test]
    fn round_trip_and_limits() {
        let f = encode(&RequestEnvelope::new(Request::Stats(
            StatsRequest::default(),
        )));
        let payload = read_frame(&mut &f[..], MAX_FRAME).unwrap();
        assert!(parse_request(&payload).is_ok());
        assert!(matches!(
            read_frame(&mut &f[..f.len() - 1], MAX_FRAME),
            Err(FrameError::Truncated { .. })
        ));
        assert!(matches!(
            read_frame(&mut &f[..2], MAX_FRAME),
            Err(FrameError::Truncated {
                expected: 4,
                got: 2
            })
        ));
        assert!(matches!(
            read_frame(&mut &[][..], MAX_FRAME),
            Err(FrameError::Closed)
        ));
        let big = (MAX_FRAME as u32 + 1).to_be_bytes();
        assert!(matches!(
            read_frame(&mut &big[..], MAX_FRAME),
            Err(FrameError::TooLarge { .. })
        ));
    }

    proptest! {
        // Arbitrary bytes through the frame splitter and request parser: errors, never panics.
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let (frames, rest) = split_frames(&bytes, 256);
            for f in frames {
                let _ = parse_request(f);
            }
            let _ = rest;
            let _ = read_frame(&mut &bytes[..], 256);
            let _ = parse_request(&bytes);
        }

        // JSON-shaped noise reaches the request parser's deeper paths.
        #[test]
        fn json_noise_never_panics(ty in "[a-z_]{0,12}", id in any::<i64>(), v in 0u32..3, extra in "[ -~]{0,40}") {
            let text = format!(r#"{{"version":{v},"request":{{"type":"{ty}","id":{id},"x":"{extra}"}}}}"#);
            let _ = parse_request(text.as_bytes());
            let text = format!(r#"{{"version":1,"request":{{"type":"submit","argv":["{extra}"],"cpu_millis":{id},"mem_mib":1}}}}"#);
            let _ = parse_request(text.as_bytes());
        }
    }
}
