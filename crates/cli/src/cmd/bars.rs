//! Progress bars for the learning module's long runs (`llmchain train`,
//! `llmchain eval`): one indicatif bar per [`llmchain_learn::Progress`] phase
//! on standard error, hidden when stderr is not a terminal or when the
//! caller asks (`--json`).

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use llmchain_learn::Progress;

/// Draws each phase of a run as a bar: `phase [=====>   ] done/total message`.
pub struct Bars {
    bar: Option<ProgressBar>,
    hidden: bool,
}

impl Bars {
    /// Bars on stderr; drawn only when stderr is a terminal and `hide` is false.
    pub fn new(hide: bool) -> Self {
        Bars {
            bar: None,
            hidden: hide || !std::io::stderr().is_terminal(),
        }
    }
}

impl Progress for Bars {
    fn phase(&mut self, name: &str, total: u64) {
        self.close("");
        if self.hidden {
            return;
        }
        let b = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        b.set_style(
            ProgressStyle::with_template(
                "{prefix:>16} [{bar:30}] {pos}/{len} {msg} ({elapsed}, ETA {eta})",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        b.set_prefix(name.to_string());
        self.bar = Some(b);
    }

    fn step(&mut self, done: u64, msg: &str) {
        if let Some(b) = &self.bar {
            b.set_position(done);
            b.set_message(msg.to_string());
        }
    }

    fn finish(&mut self, summary: &str) {
        self.close(summary);
    }
}

impl Bars {
    /// Leave the current bar on screen with `summary` and move to a new
    /// line, so the next bar or the report starts below it.
    fn close(&mut self, summary: &str) {
        if let Some(b) = self.bar.take() {
            b.finish_with_message(summary.to_string());
            eprintln!();
        }
    }
}

impl Drop for Bars {
    fn drop(&mut self) {
        self.close("");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_bars_count_phases_and_draw_nothing() {
        let mut b = Bars::new(true);
        assert!(b.hidden);
        b.phase("imitation", 3);
        b.step(1, "epoch 1/1 loss 0.5");
        assert!(b.bar.is_none(), "--json hides the bars");
        b.finish("");
        b.phase("policy gradient", 2);
        assert!(b.bar.is_none());
    }
}
