//! A llama-family GGUF model on candle (CPU) with greedy or seeded sampling, stop conditions,
//! constrained decoding and a prompt-prefix KV cache shared across calls.
//!
//! Determinism: for the same model file, prompt, config, seed and sequence of earlier calls the
//! output is identical (sampling draws come from a ChaCha8 generator seeded per call; ties break
//! towards the lower id). Prefix reuse splits the prompt's forward pass differently, which can
//! change logits in the last bits and so, in rare near-ties, a choice; set
//! [`GenerateConfig::reuse_prefix`] to `false` for results independent of earlier calls.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::{Device, Tensor};
use candle_transformers::models::quantized_llama::{ModelWeights, MAX_SEQ_LEN};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::chat::{ChatMessage, ChatTemplate};
use crate::constraint::Constraint;
use crate::error::{Error, Result};
use crate::tokenizer::{TokenKind, Tokenizer};

/// Prompt tokens fed to the model per forward pass.
const PROMPT_CHUNK: usize = 256;
/// A new prefix snapshot is taken only when it covers this many more tokens than the old one.
const MIN_PREFIX_GAIN: usize = 16;

/// What a loaded model is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    /// The GGUF file.
    pub path: PathBuf,
    /// `general.architecture`.
    pub architecture: String,
    /// `general.name`, when present.
    pub name: Option<String>,
    /// The most common weight type by element count (e.g. `"Q4_1"`, `"Q8_0"`, `"F32"`).
    pub weight_type: String,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Usable context in tokens (the smaller of the file's and the engine's limit).
    pub context_length: usize,
    /// Transformer blocks.
    pub block_count: usize,
    /// Hidden size.
    pub embedding_length: usize,
    /// File size in bytes.
    pub file_bytes: u64,
}

/// How the next token is chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampling {
    /// The most likely allowed token (lowest id on ties).
    Greedy,
    /// Softmax sampling at a temperature, optionally among the `top_k` best allowed tokens,
    /// from a generator seeded with `seed`.
    Temperature {
        /// Temperature (> 0).
        temperature: f64,
        /// Keep only the k most likely allowed tokens (`None`: all).
        top_k: Option<usize>,
        /// Seed of the per-call random generator.
        seed: u64,
    },
}

/// Settings of one generation.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateConfig {
    /// Maximum new tokens.
    pub max_tokens: usize,
    /// Token choice.
    pub sampling: Sampling,
    /// Stop when the output contains one of these strings (it is cut before the match).
    pub stop: Vec<String>,
    /// Reuse the KV cache of a prompt prefix shared with earlier calls.
    pub reuse_prefix: bool,
}

impl Default for GenerateConfig {
    /// 256 tokens, greedy, no stop strings, prefix reuse on.
    fn default() -> Self {
        GenerateConfig {
            max_tokens: 256,
            sampling: Sampling::Greedy,
            stop: Vec::new(),
            reuse_prefix: true,
        }
    }
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The model emitted an end-of-generation token.
    EndToken,
    /// A stop string appeared.
    StopString,
    /// The constraint's language is complete.
    ConstraintComplete,
    /// `max_tokens` were generated.
    MaxTokens,
}

/// Measurements of one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GenStats {
    /// Tokens in the prompt.
    pub prompt_tokens: usize,
    /// Prompt tokens whose KV cache was reused from an earlier call.
    pub cached_prompt_tokens: usize,
    /// Tokens generated (including a final end token).
    pub generated_tokens: usize,
    /// From the call's start to the first generated token.
    pub time_to_first_token: Duration,
    /// The whole call.
    pub total: Duration,
}

impl GenStats {
    /// Generated tokens per second after the first token (0 when fewer than two).
    pub fn decode_tokens_per_second(&self) -> f64 {
        let t = self
            .total
            .saturating_sub(self.time_to_first_token)
            .as_secs_f64();
        if self.generated_tokens < 2 || t <= 0.0 {
            0.0
        } else {
            (self.generated_tokens - 1) as f64 / t
        }
    }
}

/// The result of one call.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// Generated text (without end tokens; cut before a stop string).
    pub text: String,
    /// Generated token ids (including a final end token).
    pub tokens: Vec<u32>,
    /// Why it stopped.
    pub stop: StopReason,
    /// Measurements.
    pub stats: GenStats,
}

/// A loaded GGUF model with its tokenizer and chat template.
pub struct Model {
    weights: ModelWeights,
    tokenizer: Tokenizer,
    template: std::result::Result<ChatTemplate, String>,
    info: ModelInfo,
    device: Device,
    end_tokens: Vec<u32>,
    /// Token ids by decoded piece alphabet (see [`Constraint::alphabet`]).
    candidates: HashMap<Vec<u8>, Vec<u32>>,
    /// Candidates when the constraint has no alphabet: every non-control token with a piece.
    all_candidates: Vec<u32>,
    /// Weights whose KV cache holds exactly these prompt tokens.
    prefix: Option<(Vec<u32>, ModelWeights)>,
    last_prompt: Vec<u32>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

fn md_str(ct: &Content, key: &str) -> Option<String> {
    match ct.metadata.get(key) {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    }
}

fn md_usize(ct: &Content, key: &str) -> Option<usize> {
    ct.metadata
        .get(key)
        .and_then(|v| v.to_u32().ok())
        .map(|v| v as usize)
}

/// Reads a GGUF file's header (metadata and tensor index).
pub fn read_gguf(path: &Path) -> Result<Content> {
    let file = File::open(path).map_err(|e| Error::io("opening GGUF", path, e))?;
    let mut reader = BufReader::new(file);
    Content::read(&mut reader).map_err(|e| Error::gguf(path, format!("reading header: {e}")))
}

impl Model {
    /// Loads a llama-family GGUF (Q4_1, Q8_0, F16, F32, ... weights) with its tokenizer.
    pub fn load(path: impl AsRef<Path>) -> Result<Model> {
        let path = path.as_ref();
        let started = Instant::now();
        let file = File::open(path).map_err(|e| Error::io("opening GGUF", path, e))?;
        let file_bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
        let mut reader = BufReader::new(file);
        let ct = Content::read(&mut reader)
            .map_err(|e| Error::gguf(path, format!("reading header: {e}")))?;
        let architecture = md_str(&ct, "general.architecture")
            .ok_or_else(|| Error::gguf(path, "metadata key general.architecture is missing"))?;
        if architecture != "llama" {
            return Err(Error::UnsupportedArchitecture {
                path: path.to_path_buf(),
                arch: architecture,
            });
        }
        for key in [
            "llama.attention.head_count",
            "llama.attention.head_count_kv",
            "llama.block_count",
            "llama.embedding_length",
            "llama.rope.dimension_count",
            "llama.attention.layer_norm_rms_epsilon",
        ] {
            if !ct.metadata.contains_key(key) {
                return Err(Error::gguf(path, format!("metadata key {key} is missing")));
            }
        }
        let tokenizer = Tokenizer::from_gguf(&ct).map_err(|e| Error::gguf(path, e.to_string()))?;
        let template = match md_str(&ct, "tokenizer.chat_template") {
            Some(t) => ChatTemplate::from_jinja(&t).map_err(|e| e.to_string()),
            None => Err("the GGUF has no tokenizer.chat_template".to_string()),
        };
        let mut by_type: HashMap<String, usize> = HashMap::new();
        for t in ct.tensor_infos.values() {
            *by_type.entry(format!("{:?}", t.ggml_dtype)).or_default() += t.shape.elem_count();
        }
        let weight_type = by_type
            .into_iter()
            .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
            .map(|(k, _)| k)
            .unwrap_or_default();
        let info = ModelInfo {
            path: path.to_path_buf(),
            architecture,
            name: md_str(&ct, "general.name"),
            weight_type,
            vocab_size: tokenizer.vocab_size(),
            context_length: md_usize(&ct, "llama.context_length")
                .unwrap_or(MAX_SEQ_LEN)
                .min(MAX_SEQ_LEN),
            block_count: md_usize(&ct, "llama.block_count").unwrap_or(0),
            embedding_length: md_usize(&ct, "llama.embedding_length").unwrap_or(0),
            file_bytes,
        };
        if let Some(t) = ct.tensor_infos.get("token_embd.weight") {
            let rows = t.shape.dims().first().copied().unwrap_or(0);
            if rows != info.vocab_size {
                return Err(Error::gguf(
                    path,
                    format!(
                        "token_embd.weight has {rows} rows but the vocabulary has {} tokens",
                        info.vocab_size
                    ),
                ));
            }
        }
        let device = Device::Cpu;
        let weights = ModelWeights::from_gguf(ct, &mut reader, &device)
            .map_err(|e| Error::gguf(path, format!("loading weights: {e}")))?;
        let end_tokens = tokenizer.end_tokens();
        let all_candidates = (0..tokenizer.vocab_size() as u32)
            .filter(|&id| {
                tokenizer.kind(id) != TokenKind::Control && !tokenizer.token_str(id).is_empty()
            })
            .collect();
        tracing::info!(path = %path.display(), weights = %info.weight_type, ms = started.elapsed().as_millis() as u64, "GGUF model loaded");
        Ok(Model {
            weights,
            tokenizer,
            template,
            info,
            device,
            end_tokens,
            candidates: HashMap::new(),
            all_candidates,
            prefix: None,
            last_prompt: Vec::new(),
        })
    }

    /// What was loaded.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// The model's tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The chat template read from the file, or why there is none usable.
    pub fn chat_template(&self) -> Result<&ChatTemplate> {
        self.template
            .as_ref()
            .map_err(|e| Error::UnknownChatTemplate(e.clone()))
    }

    /// Replaces the chat template (e.g. [`ChatTemplate::chatml`] for a file without one).
    pub fn set_chat_template(&mut self, template: ChatTemplate) {
        self.template = Ok(template);
    }

    /// Tokens that end a generation.
    pub fn end_tokens(&self) -> &[u32] {
        &self.end_tokens
    }

    /// Prompt tokens for a conversation, ending with the assistant's generation prompt.
    pub fn chat_tokens(&self, messages: &[ChatMessage]) -> Result<Vec<u32>> {
        Ok(self.chat_template()?.tokens(&self.tokenizer, messages))
    }

    /// Tokens of a raw prompt; control tokens written literally (`<|im_start|>`) are parsed.
    pub fn raw_prompt_tokens(&self, prompt: &str) -> Vec<u32> {
        self.tokenizer.encode_special(prompt, true)
    }

    /// Forgets the cached prompt prefix.
    pub fn clear_cache(&mut self) {
        self.prefix = None;
        self.last_prompt.clear();
    }

    /// Applies the chat template and generates the assistant's answer.
    pub fn chat(
        &mut self,
        messages: &[ChatMessage],
        config: &GenerateConfig,
        constraint: Option<&mut dyn Constraint>,
    ) -> Result<Generation> {
        let prompt = self.chat_tokens(messages)?;
        self.generate(&prompt, config, constraint)
    }

    fn forward(
        weights: &mut ModelWeights,
        device: &Device,
        tokens: &[u32],
        pos: usize,
    ) -> Result<Vec<f32>> {
        let mut logits = None;
        for (i, chunk) in tokens.chunks(PROMPT_CHUNK).enumerate() {
            let at = pos + i * PROMPT_CHUNK;
            let what = || format!("forward pass at position {at}");
            let input = Tensor::new(chunk, device)
                .and_then(|t| t.unsqueeze(0))
                .map_err(|e| Error::model(what(), e))?;
            logits = Some(
                weights
                    .forward(&input, at)
                    .map_err(|e| Error::model(what(), e))?,
            );
        }
        let logits = logits.ok_or_else(|| Error::model("forward pass", "no tokens to feed"))?;
        logits
            .squeeze(0)
            .and_then(|t| t.to_dtype(candle_core::DType::F32))
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(|e| Error::model("reading logits", e))
    }

    /// Prepares weights whose KV cache holds `prompt[..n]` and returns (weights, n, logits of
    /// the last prompt token).
    fn prefill(&mut self, prompt: &[u32], reuse: bool) -> Result<(ModelWeights, usize, Vec<f32>)> {
        let limit = prompt.len() - 1;
        let mut start = 0;
        let mut weights = None;
        if reuse {
            if let Some((cached, w)) = &self.prefix {
                if cached.len() <= limit && prompt.starts_with(cached) {
                    start = cached.len();
                    weights = Some(w.clone());
                }
            }
        }
        let cached = start;
        let mut weights = weights.unwrap_or_else(|| {
            let mut w = self.weights.clone();
            w.clear_kv_cache();
            w
        });
        if reuse {
            // Snapshot the longest prefix shared with the previous prompt (a system prompt,
            // instructions); when there is none and nothing was reused, snapshot this whole
            // prompt but its last token, for an identical repeat.
            let common = prompt
                .iter()
                .zip(&self.last_prompt)
                .take_while(|(a, b)| a == b)
                .count()
                .min(limit);
            let snapshot_at = if common >= start + MIN_PREFIX_GAIN {
                Some(common)
            } else if start == 0 && limit >= MIN_PREFIX_GAIN {
                Some(limit)
            } else {
                None
            };
            if let Some(at) = snapshot_at {
                Self::forward(&mut weights, &self.device, &prompt[start..at], start)?;
                start = at;
                self.prefix = Some((prompt[..at].to_vec(), weights.clone()));
            }
            self.last_prompt = prompt.to_vec();
        }
        let logits = Self::forward(&mut weights, &self.device, &prompt[start..], start)?;
        Ok((weights, cached, logits))
    }

    fn candidates_for(&mut self, alphabet: Option<Vec<u8>>) -> Vec<u32> {
        let Some(alphabet) = alphabet else {
            return self.all_candidates.clone();
        };
        if let Some(c) = self.candidates.get(&alphabet) {
            return c.clone();
        }
        let mut ok = [false; 256];
        for &b in &alphabet {
            ok[b as usize] = true;
        }
        let list: Vec<u32> = self
            .all_candidates
            .iter()
            .copied()
            .filter(|&id| self.tokenizer.token_str(id).iter().all(|&b| ok[b as usize]))
            .collect();
        self.candidates.insert(alphabet, list.clone());
        list
    }

    /// Generates from prompt tokens. With a constraint, only tokens whose whole piece the
    /// constraint allows can be chosen (end tokens only when it [`Constraint::may_end`]), and
    /// generation stops when it is complete.
    pub fn generate(
        &mut self,
        prompt: &[u32],
        config: &GenerateConfig,
        mut constraint: Option<&mut dyn Constraint>,
    ) -> Result<Generation> {
        let started = Instant::now();
        if prompt.is_empty() {
            return Err(Error::Config("the prompt is empty".into()));
        }
        if let Some(&bad) = prompt.iter().find(|&&t| t as usize >= self.info.vocab_size) {
            return Err(Error::Config(format!(
                "prompt token {bad} is outside the vocabulary of {}",
                self.info.vocab_size
            )));
        }
        if let Sampling::Temperature {
            temperature, top_k, ..
        } = config.sampling
        {
            if !(temperature > 0.0 && temperature.is_finite()) {
                return Err(Error::Config(format!(
                    "temperature must be > 0, got {temperature}"
                )));
            }
            if top_k == Some(0) {
                return Err(Error::Config("top_k must be at least 1".into()));
            }
        }
        if prompt.len() + config.max_tokens > self.info.context_length {
            return Err(Error::ContextOverflow {
                prompt: prompt.len(),
                max_tokens: config.max_tokens,
                context: self.info.context_length,
            });
        }
        let mut rng = match config.sampling {
            Sampling::Temperature { seed, .. } => Some(ChaCha8Rng::seed_from_u64(seed)),
            Sampling::Greedy => None,
        };
        let candidates = match constraint.as_deref_mut() {
            Some(c) => {
                c.reset();
                let alphabet = c.alphabet();
                Some(self.candidates_for(alphabet))
            }
            None => None,
        };
        let mut stats = GenStats {
            prompt_tokens: prompt.len(),
            ..GenStats::default()
        };
        let mut out: Vec<u32> = Vec::new();
        let mut text: Vec<u8> = Vec::new();
        let mut stop = StopReason::MaxTokens;
        if constraint.as_deref().is_some_and(|c| c.is_complete()) {
            stats.total = started.elapsed();
            return Ok(Generation {
                text: String::new(),
                tokens: out,
                stop: StopReason::ConstraintComplete,
                stats,
            });
        }
        if config.max_tokens == 0 {
            stats.total = started.elapsed();
            return Ok(Generation {
                text: String::new(),
                tokens: out,
                stop,
                stats,
            });
        }
        let (mut weights, cached, mut logits) = self.prefill(prompt, config.reuse_prefix)?;
        stats.cached_prompt_tokens = cached;
        let mut allowed: Vec<u32> = Vec::new();
        for step in 0..config.max_tokens {
            // Which tokens may come next.
            let choice = match (&mut constraint, &candidates) {
                (Some(c), Some(cands)) => {
                    allowed.clear();
                    allowed.extend(
                        cands
                            .iter()
                            .copied()
                            .filter(|&id| c.allows(self.tokenizer.token_str(id))),
                    );
                    if c.may_end() {
                        allowed.extend_from_slice(&self.end_tokens);
                    }
                    if allowed.is_empty() {
                        return Err(Error::ConstraintDeadEnd {
                            generated: String::from_utf8_lossy(&text).into_owned(),
                        });
                    }
                    pick(&logits, Some(&allowed), config.sampling, rng.as_mut())
                }
                _ => pick(&logits, None, config.sampling, rng.as_mut()),
            };
            if step == 0 {
                stats.time_to_first_token = started.elapsed();
            }
            out.push(choice);
            if self.end_tokens.contains(&choice) {
                stop = StopReason::EndToken;
                break;
            }
            let piece = self.tokenizer.token_str(choice);
            if self.tokenizer.kind(choice) != TokenKind::Control {
                text.extend_from_slice(piece);
            }
            if let Some(c) = constraint.as_deref_mut() {
                c.advance(piece);
                if c.is_complete() {
                    stop = StopReason::ConstraintComplete;
                    break;
                }
            }
            if !config.stop.is_empty() {
                let s = String::from_utf8_lossy(&text);
                if let Some(at) = config.stop.iter().filter_map(|p| s.find(p.as_str())).min() {
                    let cut = s[..at].as_bytes().to_vec();
                    text = cut;
                    stop = StopReason::StopString;
                    break;
                }
            }
            if step + 1 == config.max_tokens {
                break;
            }
            let pos = prompt.len() + out.len() - 1;
            logits = Self::forward(&mut weights, &self.device, &[choice], pos)?;
        }
        stats.generated_tokens = out.len();
        stats.total = started.elapsed();
        tracing::debug!(
            prompt = stats.prompt_tokens,
            cached = stats.cached_prompt_tokens,
            generated = stats.generated_tokens,
            ms = stats.total.as_millis() as u64,
            "generation done"
        );
        Ok(Generation {
            text: String::from_utf8_lossy(&text).into_owned(),
            tokens: out,
            stop,
            stats,
        })
    }
}

/// Chooses a token from `logits`, among `allowed` when given.
fn pick(
    logits: &[f32],
    allowed: Option<&[u32]>,
    sampling: Sampling,
    rng: Option<&mut ChaCha8Rng>,
) -> u32 {
    let score = |id: u32| {
        logits
            .get(id as usize)
            .copied()
            .filter(|v| !v.is_nan())
            .unwrap_or(f32::NEG_INFINITY)
    };
    let mut ids: Vec<u32> = match allowed {
        Some(a) => a.to_vec(),
        None => (0..logits.len() as u32).collect(),
    };
    // Best first; ties towards the lower id.
    let better = |a: &u32, b: &u32| score(*b).total_cmp(&score(*a)).then(a.cmp(b));
    match (sampling, rng) {
        (
            Sampling::Temperature {
                temperature, top_k, ..
            },
            Some(rng),
        ) => {
            ids.sort_by(better);
            ids.dedup();
            if let Some(k) = top_k {
                ids.truncate(k.max(1));
            }
            let max = score(ids[0]);
            if !max.is_finite() {
                return ids[0];
            }
            let weights: Vec<f64> = ids
                .iter()
                .map(|&id| (f64::from(score(id) - max) / temperature).exp())
                .collect();
            let total: f64 = weights.iter().sum();
            let mut r = rng.gen::<f64>() * total;
            for (&id, w) in ids.iter().zip(&weights) {
                if r < *w {
                    return id;
                }
                r -= w;
            }
            ids[ids.len() - 1]
        }
        _ => ids.into_iter().min_by(better).unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_picks_the_best_allowed_with_low_id_ties() {
        let logits = [1.0, 5.0, 5.0, 9.0];
        assert_eq!(pick(&logits, None, Sampling::Greedy, None), 3);
        assert_eq!(pick(&logits, Some(&[2, 1]), Sampling::Greedy, None), 1);
        assert_eq!(pick(&[f32::NAN, 0.0], None, Sampling::Greedy, None), 1);
    }

    #[test]
    fn seeded_sampling_is_deterministic_and_respects_allowed() {
        let logits: Vec<f32> = (0..50).map(|i| (i % 7) as f32).collect();
        let allowed: Vec<u32> = (10..30).collect();
        let s = Sampling::Temperature {
            temperature: 1.0,
            top_k: None,
            seed: 9,
        };
        let draw = |seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            (0..20)
                .map(|_| pick(&logits, Some(&allowed), s, Some(&mut rng)))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(9), draw(9));
        assert!(draw(9).iter().all(|id| allowed.contains(id)));
        assert_ne!(draw(9), draw(10));
    }
}
