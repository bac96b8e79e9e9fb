//! Fetches SmolLM2-135M-Instruct into the model dir (`--q8` also writes the Q8_0 file):
//! `cargo run --release -p llmchain-gguf --example fetch -- [--q8] [--dir DIR]`.
//! The `llmchain model fetch smollm2` command does the same.

use std::path::PathBuf;

fn main() -> std::process::ExitCode {
    let mut options = llmchain_gguf::FetchOptions::default();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--q8" => options.q8 = true,
            "--dir" => options.dir = args.next().map(PathBuf::from),
            other => {
                eprintln!("unknown argument {other:?}; usage: fetch [--q8] [--dir DIR]");
                return std::process::ExitCode::from(2);
            }
        }
    }
    match llmchain_gguf::fetch_model("smollm2", &options) {
        Ok(f) => {
            println!("{}", f.path.display());
            if let Some(q8) = f.q8_path {
                println!("{}", q8.display());
            }
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
