//! `llmchain`: the thin binary. Parse arguments → install tracing → call the
//! subcommand's `run` → map the error chain to an exit code (ripgrep style).
//! Each subcommand lives in its own file under `cmd/`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;
mod plot;

/// LLMChain: a resource manager whose decision core is a language model
/// trained for scheduling. Simulate policies over real workload traces, run
/// the worked example, or run a real node.
#[derive(Parser, Debug)]
#[command(name = "llmchain", version, about, long_about = None, propagate_version = true)]
struct Cli {
    /// More log output (-v info, -vv debug, -vvv trace). `RUST_LOG` overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

/// Subcommands. One variant per file in `cmd/`.
#[derive(Subcommand, Debug)]
enum Command {
    /// Run the design text's worked example: 8 CPUs / 16 memory, 10 random tasks.
    Demo(cmd::demo::Args),
    /// Simulate policies over a workload and print a comparison table.
    Sim(cmd::sim::Args),
    /// Train a model (`sched-lm`, `runtime`) and save it under models/.
    Train(cmd::train::Args),
    /// Evaluate baselines and trained models (RLScheduler protocol).
    Eval(cmd::eval::Args),
    /// Run the node daemon (Unix socket, optional HTTP, SQLite state, cgroup executor).
    Daemon(cmd::daemon::Args),
    /// Queue a command on the node daemon: `llmchain submit --cpu 2 --mem 1G -- cmd args...`.
    Submit(cmd::submit::Args),
    /// List the node daemon's tasks.
    Ps(cmd::ps::Args),
    /// Wait until a task has finished (exit code 0 only if it completed).
    Wait(cmd::wait::Args),
    /// Cancel a queued or running task.
    Cancel(cmd::cancel::Args),
    /// Print a task's output (`-f` to follow).
    Logs(cmd::logs::Args),
    /// Live view of the node: telemetry, queue, running tasks.
    Top(cmd::top::Args),
    /// Why is a task pending (node daemon).
    Explain(cmd::explain::Args),
    /// Export the node's feedback records (`history export --swf FILE`).
    History(cmd::history::Args),
    /// Why is a task not running, in a simulation: `explain-sim --sim WORKLOAD --policy SPEC --at T TASK`.
    #[command(name = "explain-sim")]
    ExplainSim(cmd::explain_sim::Args),
    /// Fetch or locate language models (`model fetch smollm2 --q8`).
    Model(cmd::model::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    install_tracing(cli.verbose);
    let result = match cli.command {
        Command::Demo(args) => cmd::demo::run(args),
        Command::Sim(args) => cmd::sim::run(args),
        Command::Train(args) => cmd::train::run(args),
        Command::Eval(args) => cmd::eval::run(args),
        Command::Daemon(args) => cmd::daemon::run(args),
        Command::Submit(args) => cmd::submit::run(args),
        Command::Ps(args) => cmd::ps::run(args),
        Command::Wait(args) => cmd::wait::run(args),
        Command::Cancel(args) => cmd::cancel::run(args),
        Command::Logs(args) => cmd::logs::run(args),
        Command::Top(args) => cmd::top::run(args),
        Command::Explain(args) => cmd::explain::run(args),
        Command::History(args) => cmd::history::run(args),
        Command::Model(args) => cmd::model::run(args),
        Command::ExplainSim(args) => cmd::explain_sim::run_explain(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::from(cmd::exit_code(&err))
        }
    }
}

fn install_tracing(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
