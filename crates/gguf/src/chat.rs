//! Chat templates: turns role/content messages into prompt tokens. Supports ChatML (SmolLM2,
//! Qwen, ...) read from `tokenizer.chat_template`; other templates are a clear error and the
//! caller passes a raw prompt instead.
//!
//! Message content is tokenised as plain text (special-token text inside it stays ordinary
//! characters), and only the template's own markers become control tokens, so untrusted content
//! cannot close a turn or open a new one.

use crate::error::{Error, Result};
use crate::tokenizer::Tokenizer;

/// Who wrote a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Instructions.
    System,
    /// The user's turn.
    User,
    /// The model's turn.
    Assistant,
}

impl Role {
    /// The role's name in templates.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    /// Author.
    pub role: Role,
    /// Text (treated as plain text, never as control tokens).
    pub content: String,
}

impl ChatMessage {
    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        ChatMessage {
            role: Role::System,
            content: content.into(),
        }
    }
    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        ChatMessage {
            role: Role::User,
            content: content.into(),
        }
    }
    /// An assistant message.
    pub fn assistant(content: impl Into<String>) -> Self {
        ChatMessage {
            role: Role::Assistant,
            content: content.into(),
        }
    }
}

/// A chat template this engine can apply.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChatTemplate {
    /// `<|im_start|>{role}\n{content}<|im_end|>\n` per message, then `<|im_start|>assistant\n`.
    ChatMl {
        /// System message inserted when the conversation does not start with one (SmolLM2's
        /// template does this).
        default_system: Option<String>,
    },
}

const IM_START: &str = "<|im_start|>";
const IM_END: &str = "<|im_end|>";

impl ChatTemplate {
    /// Recognises a Jinja chat template from GGUF metadata (`tokenizer.chat_template`).
    pub fn from_jinja(template: &str) -> Result<ChatTemplate> {
        if template.contains(IM_START) && template.contains(IM_END) {
            // SmolLM2: {% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n...<|im_end|>\n' }}{% endif %}
            let marker = "'<|im_start|>system\n";
            let default_system = template.find("!= 'system'").and_then(|at| {
                let rest = &template[at..];
                let start = rest.find(marker)? + marker.len();
                let end = rest[start..].find(IM_END)?;
                Some(rest[start..start + end].to_string())
            });
            return Ok(ChatTemplate::ChatMl { default_system });
        }
        let head: String = template.chars().take(60).collect();
        Err(Error::UnknownChatTemplate(format!(
            "template starting {head:?} is not ChatML"
        )))
    }

    /// Plain ChatML without a default system message.
    pub fn chatml() -> ChatTemplate {
        ChatTemplate::ChatMl {
            default_system: None,
        }
    }

    fn segments<'a>(&'a self, messages: &'a [ChatMessage]) -> Vec<(bool, &'a str)> {
        // (is_markup, text): markup is parsed for special tokens, content is not.
        let ChatTemplate::ChatMl { default_system } = self;
        let mut out: Vec<(bool, &str)> = Vec::new();
        if let (Some(sys), Some(first)) = (default_system, messages.first()) {
            if first.role != Role::System {
                out.extend([
                    (true, IM_START),
                    (true, "system\n"),
                    (false, sys.as_str()),
                    (true, IM_END),
                    (true, "\n"),
                ]);
            }
        }
        for m in messages {
            out.extend([(true, IM_START), (true, m.role.as_str()), (true, "\n")]);
            out.push((false, m.content.as_str()));
            out.extend([(true, IM_END), (true, "\n")]);
        }
        out.extend([(true, IM_START), (true, "assistant\n")]);
        out
    }

    /// The prompt as text (for display, hashing or an HTTP server's raw completion endpoint).
    pub fn render(&self, messages: &[ChatMessage]) -> String {
        self.segments(messages)
            .into_iter()
            .map(|(_, s)| s)
            .collect()
    }

    /// The prompt as tokens, with a generation prompt for the assistant's turn. Content is
    /// tokenised as plain text.
    ///
    /// Markup and content are tokenised separately, so the ids may differ from tokenising
    /// [`ChatTemplate::render`]'s text across a boundary (a newline followed by content); the
    /// model sees the same text.
    pub fn tokens(&self, tok: &Tokenizer, messages: &[ChatMessage]) -> Vec<u32> {
        // BOS when the model asks for it (encoding "" with add_special yields just that).
        let mut out = tok.encode("", true);
        // Merge adjacent markup into one string so e.g. "system\n" tokenises as llama.cpp would.
        let mut markup = String::new();
        for (is_markup, text) in self.segments(messages) {
            if is_markup {
                markup.push_str(text);
            } else {
                out.extend(tok.encode_special(&markup, false));
                markup.clear();
                out.extend(tok.encode(text, false));
            }
        }
        out.extend(tok.encode_special(&markup, false));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMOLLM2: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    #[test]
    fn smollm2_template_is_chatml_with_its_default_system() {
        let t = ChatTemplate::from_jinja(SMOLLM2).unwrap();
        assert_eq!(
            t,
            ChatTemplate::ChatMl {
                default_system: Some(
                    "You are a helpful AI assistant named SmolLM, trained by Hugging Face".into()
                )
            }
        );
        assert_eq!(
            t.render(&[ChatMessage::user("hi")]),
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
        );
        assert_eq!(
            t.render(&[ChatMessage::system("S"), ChatMessage::user("U")]),
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn unknown_template_is_a_clear_error() {
        let err = ChatTemplate::from_jinja("[INST] {{ messages }} [/INST]").unwrap_err();
        assert!(err.to_string().contains("not ChatML"), "{err}");
    }
}
