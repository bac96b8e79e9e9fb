//! One module per subcommand. Each has `Args` (clap) and `run(Args) -> anyhow::Result<()>`.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

pub mod bars;
pub mod cancel;
pub mod daemon;
pub mod demo;
pub mod eval;
pub mod explain;
pub mod explain_sim;
pub mod history;
pub mod logs;
pub mod model;
pub mod node_client;
pub mod policies;
pub mod ps;
pub mod sim;
pub mod submit;
pub mod table;
pub mod top;
pub mod train;
pub mod wait;

/// Exit code for an error: 2 for usage/input errors, 1 otherwise.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    if err
        .chain()
        .any(|c| c.downcast_ref::<UsageError>().is_some())
    {
        2
    } else {
        1
    }
}

/// An error in what the user asked for (bad flag value, unknown name).
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Write `text` to `path`, or to standard output when `path` is `-`.
/// Creates parent directories; writes to a temporary file and renames, so a
/// crash never leaves half a file.
pub fn write_output(path: &Path, text: &str) -> Result<()> {
    if path.as_os_str() == "-" {
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())?;
        out.write_all(b"\n")?;
        return Ok(());
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, format!("{text}\n"))
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    Ok(())
}

/// A progress bar on standard error; hidden when stderr is not a terminal.
pub fn progress_bar(len: u64, what: &str) -> indicatif::ProgressBar {
    let pb = indicatif::ProgressBar::new(len);
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:30}] {pos}/{len} runs, {elapsed} elapsed, ETA {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    pb
}
