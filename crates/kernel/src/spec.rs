//! Kernel specs: the strings `llmchain sim --policy kernel:...` accepts.
//!
//! ```text
//! kernel                                   builtin backend: the trained scheduling LM
//!                                          (embedded `sched-lm` + EASY backfilling)
//! kernel:auto[,window=N]                   per-window policy selection (`models/auto-select`)
//! kernel:policy=SPEC[,OPTS]                any policy as the decision backend
//! kernel:gguf=PATH[,OPTS]                  in-process GGUF model (constrained decoding)
//! kernel:smollm2[,q8][,OPTS]               the fetched SmolLM2-135M-Instruct (Q4_1, or Q8_0 with q8)
//! kernel:openai=URL,model=NAME[,key_env=VAR][,timeout=MS][,retries=N][,constrain=auto|schema|grammar|none][,OPTS]
//! OPTS: every=K  deadline=MS  fallback=SPEC  mode=order|choose  choices=A|B|..  fill=on|off
//!       change=FRACTION  plan=N (ids per answer)  max_tasks=N (tasks shown)  max_tokens=N
//! ```
//! Policy specs inside a kernel spec may carry at most one `:key=value`
//! parameter (commas separate kernel options).
//!
//! Policy specs (everywhere a spec is taken, also as `fallback=` and `choices=`):
//!
//! ```text
//! ORDERING[:k=v][+MODE]                    heuristics (`llmchain_policy::build`)
//! lm:NAME[+MODE]                           a trained scheduling LM from the registry
//!                                          (`models/NAME`; `sched-lm` also embedded)
//! SPEC+pred                                SPEC seeing runtime estimates from the shipped
//!                                          runtime predictor (`models/runtime-hpc2n`)
//! SPEC+commit, SPEC+commit-easy            RLScheduler's semantics over SPEC's queue order:
//!                                          commit to its first task until it starts; -easy
//!                                          backfills in FCFS order ([`llmchain_policy::Committed`]);
//!                                          `lm:NAME+commit-easy` reads the LM as `lm:NAME+easy`
//!                                          (its backfilling flag set), e.g. `lm:sched-lm-commit`
//! ```

use std::path::PathBuf;
use std::time::Duration;

use llmchain_core::Policy;

use crate::backend::{Backend, Constrain, OpenAi, OpenAiConfig, PolicyBackend, Threaded};
use crate::error::KernelError;
use crate::kernel::{Kernel, KernelConfig, SlowMode};

/// The valid forms, for error messages.
pub const VALID_FORMS: &str = "`kernel` (builtin: trained scheduling LM sched-lm + EASY), `kernel:auto[,window=N]`, \
`kernel:policy=SPEC`, `kernel:gguf=PATH`, `kernel:smollm2[,q8]`, \
`kernel:openai=URL,model=NAME[,key_env=VAR][,timeout=MS][,retries=N][,constrain=auto|schema|grammar|none]`; \
options for all: every=K, deadline=MS, fallback=SPEC, mode=order|choose, choices=SPEC|SPEC|..., fill=on|off, \
change=FRACTION, plan=N, max_tasks=N, max_tokens=N; \
policy SPECs: ORDERING[:k=v][+MODE] (heuristics), `lm:NAME[+MODE]` (trained scheduling LM from models/), \
`SPEC+pred` (runtime estimates from the shipped predictor runtime-hpc2n), \
`SPEC+commit` / `SPEC+commit-easy` (RLScheduler semantics over SPEC's order)";

/// Policy forms beyond the heuristics, for error messages.
pub const MODEL_FORMS: &str =
    "`lm:NAME[+MODE]` (trained scheduling LM from models/, e.g. lm:sched-lm+easy), \
`SPEC+pred` (runtime estimates from the shipped predictor, e.g. sjf+easy+pred), \
`SPEC+commit[-easy]` (RLScheduler semantics over SPEC's order, e.g. lm:sched-lm+commit-easy), \
and kernel specs (`kernel`, `kernel:auto[,window=N]`, `kernel:policy=SPEC`, `kernel:smollm2`, ...)";

/// The policy spec of the builtin backend: the shipped scheduling LM with
/// EASY backfilling ([`llmchain_learn::default_policy`], compiled in).
pub const BUILTIN_POLICY: &str = "lm:sched-lm+easy";

/// Registry name of the runtime predictor `SPEC+pred` uses.
pub const PRED_MODEL: &str = "runtime-hpc2n";

/// One line saying what the builtin kernel runs, for the CLI.
pub fn describe_builtin() -> String {
    match llmchain_learn::SchedLm::embedded() {
        Ok(m) => format!(
            "builtin kernel = trained scheduling LM `{}` (embedded copy of models/{}, {}) + EASY backfilling",
            m.card.name,
            m.card.name,
            m.card
                .git_commit
                .as_deref()
                .map_or("commit unknown".to_string(), |c| format!("trained at {}", &c[..c.len().min(12)]))
        ),
        Err(e) => format!("builtin kernel: the embedded scheduling LM does not load: {e}"),
    }
}

enum BackendSpec {
    Builtin,
    Auto,
    Policy(String),
    Gguf(PathBuf),
    SmolLm2 { q8: bool },
    OpenAi(OpenAiConfig),
}

/// Build any policy from a spec: `kernel...` specs via [`build_kernel`],
/// everything else via `llmchain_policy::build`. This is the one function a
/// driver (the CLI's `sim`, `demo`, `explain`) calls.
pub fn build_policy(spec: &str, seed: u64) -> Result<Box<dyn Policy + Send>, KernelError> {
    if is_kernel_spec(spec) {
        Ok(Box::new(build_kernel(spec, seed)?))
    } else {
        build_plain(spec, "policy", seed)
    }
}

/// Build a policy that is not a kernel: `SPEC+commit[-easy]`, `SPEC+pred`,
/// `lm:NAME[+MODE]`, or a heuristic. `what` names the role in errors (`policy`,
/// `fallback`, `choices`).
pub(crate) fn build_plain(
    spec: &str,
    what: &'static str,
    seed: u64,
) -> Result<Box<dyn Policy + Send>, KernelError> {
    let trimmed = spec.trim();
    let model_err = |reason: String| KernelError::Model {
        spec: spec.into(),
        what,
        reason,
        valid: VALID_FORMS.into(),
    };
    if let Some(r) =
        llmchain_learn::eval::build_committed(trimmed, |inner| build_policy(inner, seed), model_err)
    {
        return r;
    }
    if let Some(inner) = strip_suffix_ci(trimmed, "+pred") {
        let inner = build_policy(inner, seed)?;
        let root = llmchain_learn::models_dir();
        let pred = match llmchain_learn::load_by_name(&root, PRED_MODEL) {
            Ok(llmchain_learn::LoadedModel::Runtime(p, _)) => p,
            Ok(_) => {
                return Err(model_err(format!(
                    "`{PRED_MODEL}` is not a runtime predictor"
                )))
            }
            Err(e) => return Err(model_err(format!("the runtime predictor: {e}"))),
        };
        return Ok(Box::new(
            llmchain_learn::runtime::PredictedEstimates::from_snapshots(
                inner,
                llmchain_learn::runtime::EstimateSource::Model(Box::new(pred)),
            ),
        ));
    }
    if trimmed.len() > 3 && trimmed[..3].eq_ignore_ascii_case("lm:") {
        return llmchain_learn::auto::build_model_policy(trimmed, &llmchain_learn::models_dir())
            .map_err(|e| model_err(e.to_string()));
    }
    llmchain_policy::build(trimmed, &llmchain_policy::BuildCtx { seed }).map_err(|source| {
        KernelError::Policy {
            spec: spec.into(),
            what,
            source,
        }
    })
}

fn strip_suffix_ci<'a>(s: &'a str, suffix: &str) -> Option<&'a str> {
    let n = s.len().checked_sub(suffix.len())?;
    (n > 0 && s.is_char_boundary(n) && s[n..].eq_ignore_ascii_case(suffix)).then(|| &s[..n])
}

/// Whether `spec` names a kernel (`kernel` or `kernel:...`).
pub fn is_kernel_spec(spec: &str) -> bool {
    let s = spec.trim().to_ascii_lowercase();
    s == "kernel" || s.starts_with("kernel:")
}

/// Build a [`Kernel`] from a spec (see the module docs). Errors list the valid forms.
pub fn build_kernel(spec: &str, seed: u64) -> Result<Kernel, KernelError> {
    let bad = |reason: String| KernelError::BadSpec {
        spec: spec.into(),
        reason,
        valid: VALID_FORMS.into(),
    };
    let trimmed = spec.trim();
    let rest = if trimmed.eq_ignore_ascii_case("kernel") {
        ""
    } else if trimmed.len() > 7 && trimmed[..7].eq_ignore_ascii_case("kernel:") {
        &trimmed[7..]
    } else {
        return Err(bad("does not start with `kernel`".into()));
    };
    let mut cfg = KernelConfig {
        seed,
        ..Default::default()
    };
    let mut backend = BackendSpec::Builtin;
    let mut openai_model: Option<String> = None;
    let mut q8 = false;
    let mut fill: Option<bool> = None;
    let mut fallback_given = false;
    let mut key_env = None;
    let mut timeout = None;
    let mut retries = None;
    let mut constrain = None;
    let mut auto_window: Option<usize> = None;
    for part in rest.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = match part.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), v.trim()),
            None => (part.to_ascii_lowercase(), ""),
        };
        let num = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| bad(format!("`{k}={v}`: expected a non-negative integer")))
        };
        match (k.as_str(), v) {
            ("builtin", "") => backend = BackendSpec::Builtin,
            ("auto", "") => backend = BackendSpec::Auto,
            ("window", v) => {
                let n = num(v)?;
                if n == 0 || n > 1_000_000 {
                    return Err(bad(format!(
                        "`window={v}`: expected an integer in 1..=1000000"
                    )));
                }
                auto_window = Some(n as usize);
            }
            ("smollm2", "") => backend = BackendSpec::SmolLm2 { q8: false },
            ("q8", "") => q8 = true,
            ("policy", v) if !v.is_empty() => backend = BackendSpec::Policy(v.to_string()),
            ("gguf", v) if !v.is_empty() => backend = BackendSpec::Gguf(PathBuf::from(v)),
            ("openai", v) if !v.is_empty() => {
                backend = BackendSpec::OpenAi(OpenAiConfig::new(v, ""))
            }
            ("model", v) if !v.is_empty() => openai_model = Some(v.to_string()),
            ("key_env", v) if !v.is_empty() => key_env = Some(v.to_string()),
            ("timeout", v) => timeout = Some(Duration::from_millis(num(v)?)),
            ("retries", v) => retries = Some(num(v)? as u32),
            ("constrain", v) => {
                constrain = Some(Constrain::parse(v).ok_or_else(|| {
                    bad(format!(
                        "`constrain={v}`: expected auto, schema, grammar or none"
                    ))
                })?)
            }
            ("every", v) => {
                let n = num(v)?;
                if n == 0 || n > u64::from(u32::MAX) {
                    return Err(bad(format!("`every={v}`: expected an integer ≥ 1")));
                }
                cfg.every = n as u32;
            }
            ("deadline", v) => cfg.deadline = Duration::from_millis(num(v)?.max(1)),
            ("fallback", v) if !v.is_empty() => {
                cfg.fallback = v.to_string();
                fallback_given = true;
            }
            ("mode", "order") => cfg.mode = SlowMode::Order,
            ("mode", "choose") => cfg.mode = SlowMode::Choose,
            ("choices", v) if !v.is_empty() => {
                cfg.choices = v
                    .split('|')
                    .map(|c| c.trim().to_ascii_lowercase())
                    .collect()
            }
            ("fill", "on" | "true" | "1") => fill = Some(true),
            ("fill", "off" | "false" | "0") => fill = Some(false),
            ("change", v) => {
                cfg.requery_change = v
                    .parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite() && *x >= 0.0)
                    .ok_or_else(|| bad(format!("`change={v}`: expected a non-negative number")))?
            }
            ("plan", v) => cfg.max_plan = (num(v)? as usize).clamp(1, 1024),
            ("max_tasks", v) => cfg.encode.max_tasks = (num(v)? as usize).clamp(1, 4096),
            ("max_tokens", v) => cfg.max_tokens = (num(v)?.clamp(1, 65_536)) as u32,
            _ => return Err(bad(format!("unknown or incomplete option `{part}`"))),
        }
    }
    if q8 {
        match &mut backend {
            BackendSpec::SmolLm2 { q8 } => *q8 = true,
            _ => return Err(bad("`q8` only goes with `smollm2`".into())),
        }
    }
    if auto_window.is_some() && !matches!(backend, BackendSpec::Auto) {
        return Err(bad("`window=N` only goes with `auto`".into()));
    }
    let is_openai = matches!(backend, BackendSpec::OpenAi(_));
    if !is_openai
        && (openai_model.is_some()
            || key_env.is_some()
            || timeout.is_some()
            || retries.is_some()
            || constrain.is_some())
    {
        return Err(bad(
            "model/key_env/timeout/retries/constrain only go with `openai=URL`".into(),
        ));
    }
    let backend: Box<dyn Backend> = match backend {
        BackendSpec::Builtin | BackendSpec::Policy(_) | BackendSpec::Auto => {
            let (pspec, name) = match &backend {
                BackendSpec::Policy(p) => (p.clone(), None),
                BackendSpec::Auto => (BUILTIN_POLICY.to_string(), Some("kernel:auto")),
                _ => (BUILTIN_POLICY.to_string(), Some("kernel")),
            };
            // A policy backend answers in microseconds: consult it at every point;
            // the fast policy is the same policy, so filling adds nothing.
            if !fallback_given {
                cfg.fallback = pspec.clone();
            }
            cfg.fill = fill.unwrap_or(false);
            let p = match &backend {
                // The builtin backend is the compiled-in model, whatever the registry holds.
                BackendSpec::Builtin => {
                    llmchain_learn::default_policy().map_err(|e| KernelError::Backend {
                        backend: "builtin (embedded sched-lm)".into(),
                        reason: e.to_string(),
                    })?
                }
                BackendSpec::Auto => {
                    let mut acfg = llmchain_learn::auto::AutoConfig::default();
                    if let Some(n) = auto_window {
                        acfg.window = n;
                    }
                    let root = llmchain_learn::models_dir();
                    let p = llmchain_learn::auto::AutoPolicy::load_by_name(
                        &root,
                        llmchain_learn::auto::MODEL_NAME,
                        acfg,
                    )
                    .map_err(|e| KernelError::Model {
                        spec: spec.into(),
                        what: "policy",
                        reason: e.to_string(),
                        valid: VALID_FORMS.into(),
                    })?;
                    Box::new(p)
                }
                _ => build_plain(&pspec, "policy", seed)?,
            };
            let kernel = Kernel::new(cfg, Some(Box::new(PolicyBackend::new(p))))?;
            return Ok(match name {
                Some(n) => kernel.with_name(n),
                None => kernel,
            });
        }
        BackendSpec::OpenAi(mut oc) => {
            oc.model = openai_model.ok_or_else(|| bad("`openai=URL` needs `model=NAME`".into()))?;
            oc.key_env = key_env;
            if let Some(t) = timeout {
                oc.timeout = t;
            }
            if let Some(r) = retries {
                oc.retries = r;
            }
            if let Some(c) = constrain {
                oc.constrain = c;
            }
            cfg.fill = fill.unwrap_or(true);
            Box::new(Threaded::spawn(OpenAi::new(oc)?))
        }
        BackendSpec::Gguf(path) => {
            cfg.fill = fill.unwrap_or(true);
            crate::backend::gguf::open(&path, &cfg)?
        }
        BackendSpec::SmolLm2 { q8 } => {
            cfg.fill = fill.unwrap_or(true);
            crate::backend::gguf::open_smollm2(q8, &cfg)?
        }
    };
    Kernel::new(cfg, Some(backend))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_specs_build() {
        for s in [
            "kernel",
            "KERNEL",
            "kernel:policy=fcfs",
            "kernel:policy=tetris:knob=0.3,every=2",
            "kernel:builtin,fallback=fcfs+easy",
        ] {
            let k = build_kernel(s, 1).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert!(k.name().starts_with("kernel"), "{s}");
        }
        assert_eq!(build_kernel("kernel", 0).unwrap().name(), "kernel");
        assert_eq!(
            build_kernel("kernel:policy=fcfs", 0).unwrap().name(),
            "kernel:policy:fcfs"
        );
        let k = build_kernel("kernel:openai=http://127.0.0.1:9,model=m,every=4,deadline=50,mode=choose,choices=fcfs|sjf+easy", 0).unwrap();
        assert_eq!(k.config().every, 4);
        assert_eq!(k.config().mode, SlowMode::Choose);
        assert_eq!(k.config().choices, vec!["fcfs", "sjf+easy"]);
    }

    #[test]
    fn bad_specs_list_valid_forms() {
        for (s, needle) in [
            ("kernal", "does not start"),
            ("kernel:every=0", "every=0"),
            ("kernel:bogus=1", "unknown or incomplete option `bogus=1`"),
            ("kernel:openai=http://x", "needs `model=NAME`"),
            ("kernel:policy=fcfs,q8", "`q8` only"),
            ("kernel:mode=sideways", "mode=sideways"),
            ("kernel:policy=fcfs,model=x", "only go with"),
        ] {
            let e = build_kernel(s, 0)
                .err()
                .unwrap_or_else(|| panic!("{s} built"))
                .to_string();
            assert!(e.contains(needle), "{s}: {e}");
            assert!(e.contains("kernel:openai=URL,model=NAME"), "{s}: {e}");
        }
        let e = build_kernel("kernel:fallback=nope", 0)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("fallback") && e.contains("fcfs"), "{e}");
        assert!(build_policy("sjf+easy", 0).is_ok());
        assert!(build_policy("kernel:policy=sjf", 0).is_ok());
    }

    #[test]
    fn commit_wraps_any_policy_with_an_order() {
        for (s, name) in [
            ("sjf+commit-easy", "sjf+commit-easy"),
            ("SJF+COMMIT", "sjf+commit"),
            ("lm:sched-lm+commit-easy", "lm:sched-lm+commit-easy"),
            ("lm:sched-lm-commit+commit", "lm:sched-lm-commit+commit"),
            ("f1+pred+commit", "f1+pred+commit"),
        ] {
            let p = build_policy(s, 0).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(p.name(), name, "{s}");
        }
        let e = build_policy("nope+commit", 0).err().unwrap().to_string();
        assert!(e.contains("nope") && e.contains("fcfs"), "{e}");
    }
}
