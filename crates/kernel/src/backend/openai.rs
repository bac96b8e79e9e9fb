//! [`OpenAi`]: a client of any OpenAI-compatible `/v1/chat/completions`
//! server (llama.cpp's server, Ollama, vLLM, hosted APIs) with blocking
//! `reqwest` + serde: API key from an environment variable, per-request
//! timeout bounded by the decision deadline, bounded retries with exponential
//! backoff on transport errors, 429 and 5xx, and constrained output through a
//! JSON-schema `response_format` and/or llama.cpp's `grammar` field.
//!
//! The kernel runs it on a worker thread ([`super::Threaded`]).

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::threaded::TextBackend;
use super::{Proposal, TextRequest};
use crate::decode::bound;
use crate::error::{BackendError, KernelError};

/// How the answer is constrained.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Constrain {
    /// Ask the server's `/props` once: llama.cpp → grammar, else schema.
    Auto,
    /// `response_format: {type: json_schema, ...}`.
    Schema,
    /// llama.cpp's `grammar` field (GBNF).
    Grammar,
    /// No constraint: the model may answer anything (decoder and validator still apply).
    None,
}

impl Constrain {
    /// Parse `auto|schema|grammar|none`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "auto" => Constrain::Auto,
            "schema" => Constrain::Schema,
            "grammar" => Constrain::Grammar,
            "none" => Constrain::None,
            _ => return None,
        })
    }
}

/// Settings of an [`OpenAi`] backend.
#[derive(Clone, Debug, PartialEq)]
pub struct OpenAiConfig {
    /// Base URL: `http://127.0.0.1:8080` or `http://host/v1`.
    pub base_url: String,
    /// Model name sent in requests.
    pub model: String,
    /// Environment variable holding the API key (sent as a bearer token), if any.
    pub key_env: Option<String>,
    /// Timeout of one HTTP request (further bounded by the decision deadline). Default 10 s.
    pub timeout: Duration,
    /// Retries after the first attempt. Default 2.
    pub retries: u32,
    /// First backoff; doubles per retry. Default 100 ms.
    pub backoff: Duration,
    /// Output constraint. Default [`Constrain::Auto`].
    pub constrain: Constrain,
    /// Sampling temperature. Default 0.
    pub temperature: f32,
}

impl OpenAiConfig {
    /// Defaults for `base_url` and `model`.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        OpenAiConfig {
            base_url: base_url.into(),
            model: model.into(),
            key_env: None,
            timeout: Duration::from_secs(10),
            retries: 2,
            backoff: Duration::from_millis(100),
            constrain: Constrain::Auto,
            temperature: 0.0,
        }
    }
}

/// An OpenAI-compatible chat-completions client.
pub struct OpenAi {
    cfg: OpenAiConfig,
    client: reqwest::blocking::Client,
    url: String,
    props_url: String,
    key: Option<String>,
    resolved: Option<Constrain>,
}

impl OpenAi {
    /// Create the client. Fails when `key_env` names an unset variable or the
    /// URL is not http(s).
    pub fn new(cfg: OpenAiConfig) -> Result<Self, KernelError> {
        let backend = format!("openai:{}", cfg.model);
        let base = cfg.base_url.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(KernelError::Backend {
                backend,
                reason: format!("base URL `{base}` is not http:// or https://"),
            });
        }
        let (url, root) = match base.strip_suffix("/v1") {
            Some(root) => (format!("{base}/chat/completions"), root.to_string()),
            None => (format!("{base}/v1/chat/completions"), base.clone()),
        };
        let key = match &cfg.key_env {
            None => None,
            Some(var) => Some(std::env::var(var).map_err(|_| KernelError::Backend {
                backend: backend.clone(),
                reason: format!("environment variable {var} (key_env) is not set"),
            })?),
        };
        let client = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(2).min(cfg.timeout))
            .build()
            .map_err(|e| KernelError::Backend {
                backend,
                reason: e.to_string(),
            })?;
        let resolved = if cfg.constrain == Constrain::Auto {
            None
        } else {
            Some(cfg.constrain)
        };
        Ok(OpenAi {
            props_url: format!("{root}/props"),
            cfg,
            client,
            url,
            key,
            resolved,
        })
    }

    /// The chat-completions URL requests go to.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn constraint(&mut self, deadline: Instant) -> Constrain {
        if let Some(c) = self.resolved {
            return c;
        }
        let left = deadline
            .saturating_duration_since(Instant::now())
            .min(Duration::from_secs(2));
        let llama = self
            .client
            .get(&self.props_url)
            .timeout(left.max(Duration::from_millis(1)))
            .send()
            .ok()
            .filter(|r| r.status().is_success())
            .and_then(|r| r.json::<Value>().ok())
            .is_some_and(|v| v.get("default_generation_settings").is_some());
        let c = if llama {
            Constrain::Grammar
        } else {
            Constrain::Schema
        };
        tracing::info!(url = %self.props_url, llama_cpp = llama, constraint = ?c, "detected server kind");
        self.resolved = Some(c);
        c
    }

    /// The JSON body of a request.
    pub fn body(&self, req: &TextRequest, constrain: Constrain) -> Value {
        let mut body = json!({
            "model": self.cfg.model,
            "messages": [
                { "role": "system", "content": req.system },
                { "role": "user", "content": req.user },
            ],
            "temperature": self.cfg.temperature,
            "max_tokens": req.max_tokens,
            "stream": false,
        });
        match constrain {
            Constrain::Schema => {
                body["response_format"] = json!({
                    "type": "json_schema",
                    "json_schema": { "name": "schedule", "strict": true, "schema": req.schema },
                });
            }
            Constrain::Grammar => body["grammar"] = Value::String(req.grammar.clone()),
            Constrain::None | Constrain::Auto => {}
        }
        body
    }

    fn attempt(&self, body: &Value, timeout: Duration) -> Result<Proposal, (BackendError, bool)> {
        let mut rb = self.client.post(&self.url).timeout(timeout).json(body);
        if let Some(k) = &self.key {
            rb = rb.bearer_auth(k);
        }
        let resp = rb.send().map_err(|e| {
            let reason = if e.is_timeout() {
                format!("timed out after {} ms", timeout.as_millis())
            } else {
                chain(&e)
            };
            (
                BackendError::Transport {
                    url: self.url.clone(),
                    reason,
                },
                true,
            )
        })?;
        let status = resp.status();
        let text = resp.text().map_err(|e| {
            (
                BackendError::Transport {
                    url: self.url.clone(),
                    reason: chain(&e),
                },
                true,
            )
        })?;
        if !status.is_success() {
            let retry = status.as_u16() == 429 || status.is_server_error();
            let (body, _) = bound(&text, 512);
            return Err((
                BackendError::Http {
                    url: self.url.clone(),
                    status: status.as_u16(),
                    body,
                },
                retry,
            ));
        }
        parse_completion(&text).map_err(|reason| {
            (
                BackendError::BadResponse {
                    url: self.url.clone(),
                    reason,
                },
                false,
            )
        })
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

/// Extract the answer text from a chat-completion response body.
pub fn parse_completion(text: &str) -> Result<Proposal, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON ({e})"))?;
    let choice = v
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
        .ok_or_else(|| "no `choices[0]`".to_string())?;
    let content = choice
        .pointer("/message/content")
        .and_then(Value::as_str)
        .ok_or_else(|| "no string `choices[0].message.content`".to_string())?;
    Ok(Proposal {
        raw: content.to_string(),
        model: v
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or("")
            .chars()
            .take(128)
            .collect(),
        tokens: v
            .pointer("/usage/completion_tokens")
            .and_then(Value::as_u64)
            .map(|t| t.min(u64::from(u32::MAX)) as u32),
    })
}

impl TextBackend for OpenAi {
    fn name(&self) -> String {
        format!("openai:{}", self.cfg.model)
    }

    fn complete(&mut self, req: &TextRequest) -> Result<Proposal, BackendError> {
        let constrain = self.constraint(req.deadline);
        let body = self.body(req, constrain);
        let mut backoff = self.cfg.backoff;
        let mut attempt = 0;
        loop {
            let left = req.deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(BackendError::Timeout {
                    deadline_ms: req.deadline_ms,
                });
            }
            match self.attempt(&body, self.cfg.timeout.min(left)) {
                Ok(p) => return Ok(p),
                // The attempt was cut short by the kernel's deadline, not by the
                // HTTP timeout: report the deadline.
                Err(_) if left < self.cfg.timeout && Instant::now() >= req.deadline => {
                    return Err(BackendError::Timeout {
                        deadline_ms: req.deadline_ms,
                    });
                }
                Err((e, retry)) => {
                    if !retry || attempt >= self.cfg.retries {
                        return Err(e);
                    }
                    tracing::debug!(error = %e, attempt, "retrying model call");
                    let left = req.deadline.saturating_duration_since(Instant::now());
                    if left <= backoff {
                        return Err(e);
                    }
                    std::thread::sleep(backoff);
                    backoff *= 2;
                    attempt += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completion_parsing() {
        let ok = r#"{"choices":[{"message":{"role":"assistant","content":"[1,2]"}}],"model":"m","usage":{"completion_tokens":5}}"#;
        let p = parse_completion(ok).unwrap();
        assert_eq!(
            (p.raw.as_str(), p.model.as_str(), p.tokens),
            ("[1,2]", "m", Some(5))
        );
        assert!(parse_completion("{}").unwrap_err().contains("choices"));
        assert!(
            parse_completion(r#"{"choices":[{"message":{"content":null}}]}"#)
                .unwrap_err()
                .contains("content")
        );
        assert!(parse_completion("<html>").unwrap_err().contains("not JSON"));
    }

    #[test]
    fn urls() {
        let a = OpenAi::new(OpenAiConfig::new("http://127.0.0.1:1/", "m")).unwrap();
        assert_eq!(a.url(), "http://127.0.0.1:1/v1/chat/completions");
        let b = OpenAi::new(OpenAiConfig::new("http://h:2/v1", "m")).unwrap();
        assert_eq!(
            (b.url(), b.props_url.as_str()),
            ("http://h:2/v1/chat/completions", "http://h:2/props")
        );
        assert!(OpenAi::new(OpenAiConfig::new("ftp://x", "m")).is_err());
        let mut c = OpenAiConfig::new("http://h", "m");
        c.key_env = Some("LLMCHAIN_SURELY_UNSET_VARIABLE".into());
        assert!(OpenAi::new(c)
            .err()
            .unwrap()
            .to_string()
            .contains("LLMCHAIN_SURELY_UNSET_VARIABLE"));
    }
}
