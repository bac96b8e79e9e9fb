//! Turning `--policy` text into policies: splitting a comma-separated list
//! whose items may carry their own `key=value` parameters, and routing each
//! spec to the crate that builds it.

use anyhow::Result;
use llmchain_core::Policy;

use super::UsageError;

/// Split `fcfs,sjf+easy,kernel:openai=URL,model=NAME,tetris` into specs.
///
/// A comma-separated item that starts with `identifier=` continues the
/// previous spec (policy names never look like that), so parameterised specs
/// need no quoting.
pub fn split_specs(list: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let continues = item.split_once('=').is_some_and(|(k, _)| {
            !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
        match out.last_mut() {
            Some(prev) if continues && prev.contains(':') => {
                prev.push(',');
                prev.push_str(item);
            }
            _ => out.push(item.to_string()),
        }
    }
    out
}

/// Build one policy from a spec: heuristics come from `llmchain-policy`,
/// `kernel...` specs from `llmchain-kernel`.
pub fn build(spec: &str, seed: u64) -> Result<Box<dyn Policy + Send>> {
    llmchain_kernel::build_policy(spec, seed).map_err(|e| UsageError(format!("{e}")).into())
}

/// Check every spec builds, so a typo fails before any long run starts.
pub fn check_all(specs: &[String], seed: u64) -> Result<()> {
    if specs.is_empty() {
        return Err(UsageError(format!(
            "no policy given; valid: {}; kernels: {}",
            llmchain_policy::valid_specs(),
            llmchain_kernel::VALID_FORMS
        ))
        .into());
    }
    for s in specs {
        if !llmchain_kernel::is_kernel_spec(s) {
            build(s, seed)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_keeps_parameters_with_their_spec() {
        assert_eq!(split_specs("fcfs, sjf+easy"), ["fcfs", "sjf+easy"]);
        assert_eq!(
            split_specs("kernel:openai=http://127.0.0.1:8080,model=x,tetris:knob=0.3,fcfs"),
            [
                "kernel:openai=http://127.0.0.1:8080,model=x",
                "tetris:knob=0.3",
                "fcfs"
            ]
        );
        // `key=value` with no spec before it stays its own (invalid) spec.
        assert_eq!(split_specs("every=3"), ["every=3"]);
    }
}
