//! Integration tests of llmchain-gguf against real components: tiny random-weight GGUF files
//! written by `make_tiny_gguf.py` (PyPI `gguf`), the real SmolLM2-135M-Instruct weights, and
//! llama.cpp's server (PyPI `xllamacpp`) as the tokenisation reference.

mod helper;

use std::collections::HashSet;

use llmchain_gguf::{
    parse_schedule, requantize, ChatMessage, Constraint, Error, GenerateConfig, Model, QuantType,
    Sampling, ScheduleConstraint, StopReason, Variant,
};

use helper::{schedule_messages, smollm2, tiny_gguf, LlamaServer, TinyVocab};

/// Asserts `text` is a schedule of distinct ids from `allowed`, at most `max` long.
fn check_schedule(text: &str, allowed: &[u64], max: usize) -> Vec<u64> {
    let ids = parse_schedule(text).unwrap_or_else(|| panic!("not a schedule: {text:?}"));
    let set: HashSet<u64> = ids.iter().copied().collect();
    assert_eq!(set.len(), ids.len(), "duplicate ids in {text:?}");
    assert!(
        ids.iter().all(|i| allowed.contains(i)),
        "{text:?} names an id outside {allowed:?}"
    );
    assert!(ids.len() <= max, "{text:?} has more than {max} ids");
    ids
}

fn sampled(seed: u64) -> GenerateConfig {
    GenerateConfig {
        max_tokens: 200,
        sampling: Sampling::Temperature {
            temperature: 1.5,
            top_k: None,
            seed,
        },
        ..GenerateConfig::default()
    }
}

#[test]
fn tiny_model_loads_in_every_weight_type_and_is_deterministic() {
    for (dtype, expect) in [("f32", "F32"), ("f16", "F16"), ("q8_0", "Q8_0")] {
        let path = tiny_gguf(dtype, TinyVocab::Small);
        let mut model = Model::load(&path).unwrap();
        assert_eq!(model.info().weight_type, expect);
        assert_eq!(model.info().architecture, "llama");
        let prompt = model.chat_tokens(&[ChatMessage::user("hello")]).unwrap();
        let cfg = GenerateConfig {
            max_tokens: 12,
            ..sampled(7)
        };
        let a = model.generate(&prompt, &cfg, None).unwrap();
        let b = model.generate(&prompt, &cfg, None).unwrap();
        assert_eq!(a.tokens, b.tokens, "{dtype}: same seed, different tokens");
        assert!(!a.tokens.is_empty() && a.tokens.len() <= 12);
        assert_eq!(a.stats.prompt_tokens, prompt.len());
        assert_eq!(a.stats.generated_tokens, a.tokens.len());
        assert!(a.stats.time_to_first_token <= a.stats.total);
    }
}

#[test]
fn constrained_generation_on_random_weights_always_parses() {
    let id_sets: [&[u64]; 5] = [
        &[3, 5, 7],
        &[1, 2, 10, 12, 21, 100, 120],
        &[0],
        &[],
        &[34, 341, 3412, 9, 90, 1000],
    ];
    for dtype in ["f32", "q8_0"] {
        let mut model = Model::load(tiny_gguf(dtype, TinyVocab::Small)).unwrap();
        let prompt = model.chat_tokens(&[ChatMessage::user("schedule")]).unwrap();
        let mut nonempty = 0;
        for (k, ids) in id_sets.iter().enumerate() {
            for seed in 0..12u64 {
                let max = 1 + (seed as usize % 5);
                let mut c = ScheduleConstraint::new(ids, max).with_spaces(seed % 2 == 0);
                let out = model
                    .generate(&prompt, &sampled(seed * 31 + k as u64), Some(&mut c))
                    .unwrap();
                assert_eq!(
                    out.stop,
                    StopReason::ConstraintComplete,
                    "{dtype} {ids:?} seed {seed}: {:?}",
                    out.text
                );
                nonempty += usize::from(!check_schedule(&out.text, ids, max).is_empty());
            }
        }
        assert!(
            nonempty > 10,
            "{dtype}: the sampled schedules are almost all empty ({nonempty})"
        );
    }
}

#[test]
fn constrained_generation_with_the_real_vocabulary_parses() {
    // The real SmolLM2 tokenizer (49152 tokens, multi-char pieces such as "],") on random weights.
    let mut model = Model::load(tiny_gguf("f16", TinyVocab::SmolLm2)).unwrap();
    assert_eq!(model.info().vocab_size, 49152);
    let ids: Vec<u64> = (1..=40).map(|i| i * 7).collect();
    let prompt = model
        .chat_tokens(&[ChatMessage::user("pick tasks")])
        .unwrap();
    for seed in 0..8 {
        let mut c = ScheduleConstraint::new(&ids, 8);
        let out = model
            .generate(&prompt, &sampled(seed), Some(&mut c))
            .unwrap();
        check_schedule(&out.text, &ids, 8);
        let mut greedy = ScheduleConstraint::new(&ids, 8);
        let g = model
            .generate(&prompt, &GenerateConfig::default(), Some(&mut greedy))
            .unwrap();
        check_schedule(&g.text, &ids, 8);
    }
}

#[test]
fn prefix_cache_reuse_gives_the_same_tokens_as_a_fresh_prefill() {
    let mut model = Model::load(tiny_gguf("f32", TinyVocab::Small)).unwrap();
    let system = "You schedule tasks. Answer with a JSON array of task ids. ".repeat(4);
    let cfg = |reuse| GenerateConfig {
        max_tokens: 16,
        reuse_prefix: reuse,
        ..sampled(3)
    };
    let mut cached_seen = 0;
    for q in [
        "queue: 1 2 3",
        "queue: 4 5 6",
        "queue: 7 8 9",
        "queue: 1 2 3",
    ] {
        let prompt = model
            .chat_tokens(&[ChatMessage::system(&system), ChatMessage::user(q)])
            .unwrap();
        let with = model.generate(&prompt, &cfg(true), None).unwrap();
        cached_seen += with.stats.cached_prompt_tokens;
        let mut fresh = Model::load(tiny_gguf("f32", TinyVocab::Small)).unwrap();
        let without = fresh.generate(&prompt, &cfg(false), None).unwrap();
        assert_eq!(with.tokens, without.tokens, "{q}");
        assert_eq!(without.stats.cached_prompt_tokens, 0);
    }
    assert!(cached_seen > 0, "the shared system prompt was never reused");
}

#[test]
fn requantize_to_q8_0_writes_a_loadable_file() {
    let dir = tempfile::tempdir().unwrap();
    let dst = dir.path().join("tiny.q8_0.gguf");
    let report = requantize(&tiny_gguf("f32", TinyVocab::Small), &dst, QuantType::Q8_0).unwrap();
    assert_eq!(
        report.converted,
        2 + 2 * 7,
        "embeddings, output and 7 matrices per block"
    );
    let mut model = Model::load(&dst).unwrap();
    assert_eq!(model.info().weight_type, "Q8_0");
    let mut c = ScheduleConstraint::new(&[4, 8], 2);
    let prompt = model.chat_tokens(&[ChatMessage::user("go")]).unwrap();
    let out = model
        .generate(&prompt, &GenerateConfig::default(), Some(&mut c))
        .unwrap();
    check_schedule(&out.text, &[4, 8], 2);
}

#[test]
fn bad_files_and_settings_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.gguf");
    let err = Model::load(&missing).unwrap_err();
    assert!(
        matches!(err, Error::Io { .. }) && err.to_string().contains("nope.gguf"),
        "{err}"
    );
    let garbage = dir.path().join("garbage.gguf");
    std::fs::write(&garbage, b"GGUF but not really a model file at all").unwrap();
    let err = Model::load(&garbage).unwrap_err();
    assert!(err.to_string().contains("garbage.gguf"), "{err}");

    let mut model = Model::load(tiny_gguf("f32", TinyVocab::Small)).unwrap();
    let err = model
        .generate(&[], &GenerateConfig::default(), None)
        .unwrap_err();
    assert!(err.to_string().contains("empty"), "{err}");
    let err = model
        .generate(&[1, 999_999], &GenerateConfig::default(), None)
        .unwrap_err();
    assert!(err.to_string().contains("999999"), "{err}");
    let huge = GenerateConfig {
        max_tokens: 100_000,
        ..GenerateConfig::default()
    };
    assert!(matches!(
        model.generate(&[1], &huge, None).unwrap_err(),
        Error::ContextOverflow { .. }
    ));
    let hot = GenerateConfig {
        sampling: Sampling::Temperature {
            temperature: 0.0,
            top_k: None,
            seed: 1,
        },
        ..GenerateConfig::default()
    };
    assert!(model
        .generate(&[1], &hot, None)
        .unwrap_err()
        .to_string()
        .contains("temperature"));
}

/// A constraint whose language is exactly "ab" (regression: the engine must stop on completion
/// and never offer an empty piece).
struct Exactly(&'static [u8], usize);

impl Constraint for Exactly {
    fn reset(&mut self) {
        self.1 = 0;
    }
    fn allows(&self, piece: &[u8]) -> bool {
        self.0[self.1..].starts_with(piece) && !piece.is_empty()
    }
    fn advance(&mut self, piece: &[u8]) {
        self.1 += piece.len();
    }
    fn is_complete(&self) -> bool {
        self.1 == self.0.len()
    }
}

#[test]
fn custom_constraint_without_alphabet_is_honoured() {
    let mut model = Model::load(tiny_gguf("f32", TinyVocab::Small)).unwrap();
    let prompt = model.chat_tokens(&[ChatMessage::user("x")]).unwrap();
    for seed in 0..4 {
        let mut c = Exactly(b"hello, 12", 0);
        let out = model
            .generate(&prompt, &sampled(seed), Some(&mut c))
            .unwrap();
        assert_eq!(out.text, "hello, 12");
        assert_eq!(out.stop, StopReason::ConstraintComplete);
    }
}

/// Strings whose SmolLM2 token ids must equal llama.cpp's.
const TOKENIZE_CASES: &[&str] = &[
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
    "12, 345",
    "[3,5,7]",
    "[12, 3, 40]",
    "  two leading spaces",
    " one leading space",
    "trailing spaces   ",
    "line one\nline two\n\nline four\r\n",
    "\ttabs\tand  double  spaces",
    "héllo wörld, naïve café",
    "日本語のテキスト and 中文",
    "emoji 🙂👍🏽 done",
    "don't won't it's we'll I'm you're they've",
    "{\"schedule\": [1, 2, 3], \"why\": \"short\"}",
    "task_id=0042 mem=16GiB cpu=2.5",
    "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
    "",
];

#[test]
fn tokenizer_ids_match_llama_cpp_server() {
    let path = smollm2(Variant::Q4_1);
    let model = Model::load(&path).unwrap();
    let tok = model.tokenizer();
    assert_eq!(tok.pre_tokenizer(), "smollm");
    let server = LlamaServer::start(&path);
    for &s in TOKENIZE_CASES {
        let ours = tok.encode(s, false);
        assert_eq!(
            ours,
            server.tokenize(s, false),
            "plain tokenisation of {s:?}"
        );
        assert_eq!(tok.decode(&ours), s, "round trip of {s:?}");
        assert_eq!(
            tok.encode_special(s, false),
            server.tokenize(s, true),
            "special tokenisation of {s:?}"
        );
    }
    // The chat prompt as the engine builds it equals llama.cpp's tokenisation of the rendered text.
    let messages = [
        ChatMessage::system("Schedule tasks."),
        ChatMessage::user("queue:\n1 a\n2 b"),
    ];
    let rendered = model.chat_template().unwrap().render(&messages);
    assert_eq!(
        model.chat_tokens(&messages).unwrap(),
        server.tokenize(&rendered, true)
    );
}

#[test]
fn smollm2_q4_1_and_q8_0_produce_valid_schedules_for_10_tasks() {
    let ids: Vec<u64> = (0..10).map(|i| 100 + 7 * i).collect();
    for variant in [Variant::Q4_1, Variant::Q8_0] {
        let mut model = Model::load(smollm2(variant)).unwrap();
        let prompt = model.chat_tokens(&schedule_messages(&ids)).unwrap();
        let mut c = ScheduleConstraint::new(&ids, ids.len());
        let cfg = GenerateConfig {
            max_tokens: 64,
            ..GenerateConfig::default()
        };
        let out = model.generate(&prompt, &cfg, Some(&mut c)).unwrap();
        let got = check_schedule(&out.text, &ids, ids.len());
        assert_eq!(
            out.stop,
            StopReason::ConstraintComplete,
            "{variant:?}: {:?}",
            out.text
        );
        assert!(
            !got.is_empty(),
            "{variant:?}: the real model scheduled nothing: {:?}",
            out.text
        );
        // The same call again (prefix cache in use) gives the same answer.
        let mut c2 = ScheduleConstraint::new(&ids, ids.len());
        let again = model.generate(&prompt, &cfg, Some(&mut c2)).unwrap();
        assert_eq!(again.text, out.text);
        assert!(again.stats.cached_prompt_tokens > 0);
    }
}

#[test]
fn fetch_without_python_is_a_clear_error() {
    std::env::set_var("LLMCHAIN_PYTHON", "/nonexistent/python3");
    let dir = tempfile::tempdir().unwrap();
    let err = llmchain_gguf::fetch_smollm2(dir.path())
        .unwrap_err()
        .to_string();
    std::env::remove_var("LLMCHAIN_PYTHON");
    assert!(err.contains("not found") && err.contains("Python"), "{err}");
}
