//! Byte-level BPE tokenizer (GPT-2 family) built from a GGUF's `tokenizer.ggml.*` metadata,
//! with llama.cpp's pre-tokenizer rules, so ids match llama.cpp's for the same file.
//!
//! Encoding: optional special-token partition (control and user-defined tokens, longest first),
//! then the pre-tokenizer regexes applied in sequence (each splits every current piece into its
//! matches and the gaps between them, as llama.cpp does), then byte-level mapping and BPE merges
//! by rank (lowest rank first, leftmost on ties).

use std::collections::HashMap;

use candle_core::quantized::gguf_file::{Content, Value};
use fancy_regex::Regex;

use crate::error::{Error, Result};

/// The GPT-2 pre-tokenizer pattern.
const GPT2_PATTERN: &str =
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";
/// Llama 3's pre-tokenizer pattern.
const LLAMA3_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// What kind of token an id is (GGUF `tokenizer.ggml.token_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TokenKind {
    /// Ordinary text token.
    Normal,
    /// The unknown token.
    Unknown,
    /// A control token such as `<|im_start|>`: never produced from plain text.
    Control,
    /// A user-defined token, matched literally in text.
    UserDefined,
    /// Unused slot.
    Unused,
    /// A raw byte token.
    Byte,
}

impl TokenKind {
    fn from_code(code: i64) -> TokenKind {
        match code {
            2 => TokenKind::Unknown,
            3 => TokenKind::Control,
            4 => TokenKind::UserDefined,
            5 => TokenKind::Unused,
            6 => TokenKind::Byte,
            _ => TokenKind::Normal,
        }
    }
    /// True for tokens that are matched as whole units in text when special parsing is on.
    pub fn is_special(self) -> bool {
        matches!(
            self,
            TokenKind::Control | TokenKind::UserDefined | TokenKind::Unknown
        )
    }
}

/// A byte-level BPE tokenizer read from GGUF metadata.
#[derive(Debug, Clone)]
pub struct Tokenizer {
    tokens: Vec<String>,
    kinds: Vec<TokenKind>,
    pieces: Vec<Vec<u8>>,
    vocab: HashMap<String, u32>,
    /// (left, right) → (rank, merged id).
    merges: HashMap<(u32, u32), (u32, u32)>,
    /// Special tokens, longest text first.
    specials: Vec<(String, u32)>,
    byte_to_char: [char; 256],
    char_to_byte: HashMap<char, u8>,
    pre_name: String,
    pre: Vec<Regex>,
    bos: Option<u32>,
    eos: Option<u32>,
    eot: Option<u32>,
    add_bos: bool,
}

fn md<'a>(ct: &'a Content, key: &str) -> Option<&'a Value> {
    ct.metadata.get(key)
}

fn md_u32(ct: &Content, key: &str) -> Option<u32> {
    match md(ct, key)? {
        Value::U8(v) => Some(u32::from(*v)),
        Value::U16(v) => Some(u32::from(*v)),
        Value::U32(v) => Some(*v),
        Value::I32(v) => u32::try_from(*v).ok(),
        Value::U64(v) => u32::try_from(*v).ok(),
        Value::I64(v) => u32::try_from(*v).ok(),
        _ => None,
    }
}

fn value_i64(v: &Value) -> Option<i64> {
    Some(match v {
        Value::U8(v) => i64::from(*v),
        Value::I8(v) => i64::from(*v),
        Value::U16(v) => i64::from(*v),
        Value::I16(v) => i64::from(*v),
        Value::U32(v) => i64::from(*v),
        Value::I32(v) => i64::from(*v),
        Value::U64(v) => i64::try_from(*v).ok()?,
        Value::I64(v) => *v,
        _ => return None,
    })
}

fn string_array(ct: &Content, key: &str) -> Result<Vec<String>> {
    let v =
        md(ct, key).ok_or_else(|| Error::Tokenizer(format!("metadata key {key} is missing")))?;
    let Value::Array(items) = v else {
        return Err(Error::Tokenizer(format!(
            "metadata key {key} is not an array"
        )));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::String(s) => Ok(s.clone()),
            _ => Err(Error::Tokenizer(format!(
                "metadata key {key}[{i}] is not a string"
            ))),
        })
        .collect()
}

/// GPT-2's reversible byte → printable char mapping.
fn byte_level_table() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut n = 0u32;
    for b in 0..=255u8 {
        let printable = (b'!'..=b'~').contains(&b) || (0xA1..=0xAC).contains(&b) || b >= 0xAE;
        table[b as usize] = if printable {
            char::from(b)
        } else {
            let c = char::from_u32(256 + n).unwrap_or('\u{FFFD}');
            n += 1;
            c
        };
    }
    table
}

fn pre_patterns(pre: &str) -> (Vec<&'static str>, bool) {
    // Mirrors llama.cpp's `llm_tokenizer_bpe` pattern choice; the bool says the name was known.
    match pre {
        "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone" | "minerva-7b" => {
            (vec![r"\p{N}", GPT2_PATTERN], true)
        }
        "llama3" | "llama-bpe" | "llama-v3" | "falcon3" | "smaug-bpe" => {
            (vec![LLAMA3_PATTERN], true)
        }
        "gpt2" | "gpt-2" | "default" | "" | "mpt" | "olmo" | "jais" | "phi-2" => {
            (vec![GPT2_PATTERN], true)
        }
        _ => (vec![GPT2_PATTERN], false),
    }
}

impl Tokenizer {
    /// Builds the tokenizer from a GGUF file's metadata (`tokenizer.ggml.model` must be `gpt2`).
    pub fn from_gguf(ct: &Content) -> Result<Tokenizer> {
        let model = match md(ct, "tokenizer.ggml.model") {
            Some(Value::String(s)) => s.clone(),
            _ => {
                return Err(Error::Tokenizer(
                    "metadata key tokenizer.ggml.model is missing".into(),
                ))
            }
        };
        if model != "gpt2" {
            return Err(Error::Tokenizer(format!(
                "tokenizer.ggml.model = {model:?}: only byte-level BPE (\"gpt2\") is supported"
            )));
        }
        let tokens = string_array(ct, "tokenizer.ggml.tokens")?;
        let merges = match md(ct, "tokenizer.ggml.merges") {
            Some(_) => string_array(ct, "tokenizer.ggml.merges")?,
            None => Vec::new(),
        };
        let kinds: Vec<TokenKind> = match md(ct, "tokenizer.ggml.token_type") {
            Some(Value::Array(items)) => {
                if items.len() != tokens.len() {
                    return Err(Error::Tokenizer(format!(
                        "tokenizer.ggml.token_type has {} entries but tokenizer.ggml.tokens has {}",
                        items.len(),
                        tokens.len()
                    )));
                }
                items
                    .iter()
                    .map(|v| TokenKind::from_code(value_i64(v).unwrap_or(1)))
                    .collect()
            }
            _ => vec![TokenKind::Normal; tokens.len()],
        };
        let pre_name = match md(ct, "tokenizer.ggml.pre") {
            Some(Value::String(s)) => s.clone(),
            _ => "default".to_string(),
        };
        let add_bos = matches!(
            md(ct, "tokenizer.ggml.add_bos_token"),
            Some(Value::Bool(true))
        );
        let bos = md_u32(ct, "tokenizer.ggml.bos_token_id");
        let eos = md_u32(ct, "tokenizer.ggml.eos_token_id");
        let eot = md_u32(ct, "tokenizer.ggml.eot_token_id");
        Self::new(TokenizerParts {
            tokens,
            kinds,
            merges,
            pre: pre_name,
            bos,
            eos,
            eot,
            add_bos,
        })
    }

    /// Builds the tokenizer from its parts (what [`Tokenizer::from_gguf`] reads).
    pub fn new(parts: TokenizerParts) -> Result<Tokenizer> {
        let TokenizerParts {
            tokens,
            kinds,
            merges: merge_lines,
            pre: pre_name,
            bos,
            eos,
            eot,
            add_bos,
        } = parts;
        if tokens.is_empty() {
            return Err(Error::Tokenizer("the vocabulary is empty".into()));
        }
        if kinds.len() != tokens.len() {
            return Err(Error::Tokenizer(format!(
                "{} token kinds for {} tokens",
                kinds.len(),
                tokens.len()
            )));
        }
        let n = u32::try_from(tokens.len())
            .map_err(|_| Error::Tokenizer("vocabulary larger than u32".into()))?;
        for (name, id) in [("bos", bos), ("eos", eos), ("eot", eot)] {
            if let Some(id) = id {
                if id >= n {
                    return Err(Error::Tokenizer(format!(
                        "{name} token id {id} is outside the vocabulary of {n}"
                    )));
                }
            }
        }
        let byte_to_char = byte_level_table();
        let char_to_byte: HashMap<char, u8> = byte_to_char
            .iter()
            .enumerate()
            .map(|(b, &c)| (c, b as u8))
            .collect();
        let mut vocab = HashMap::with_capacity(tokens.len());
        for (i, t) in tokens.iter().enumerate() {
            vocab.entry(t.clone()).or_insert(i as u32);
        }
        let pieces = tokens
            .iter()
            .zip(&kinds)
            .map(|(t, k)| match k {
                TokenKind::Normal | TokenKind::Byte => {
                    let mut out = Vec::with_capacity(t.len());
                    for c in t.chars() {
                        match char_to_byte.get(&c) {
                            Some(&b) => out.push(b),
                            None => {
                                let mut buf = [0u8; 4];
                                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                            }
                        }
                    }
                    out
                }
                _ => t.as_bytes().to_vec(),
            })
            .collect();
        let mut merges = HashMap::with_capacity(merge_lines.len());
        for (rank, line) in merge_lines.iter().enumerate() {
            let Some((a, b)) = line.split_once(' ') else {
                return Err(Error::Tokenizer(format!(
                    "tokenizer.ggml.merges[{rank}] = {line:?} is not two tokens separated by a space"
                )));
            };
            let (Some(&ia), Some(&ib)) = (vocab.get(a), vocab.get(b)) else {
                continue;
            };
            let Some(&im) = vocab.get(&format!("{a}{b}")) else {
                continue;
            };
            merges.entry((ia, ib)).or_insert((rank as u32, im));
        }
        let mut specials: Vec<(String, u32)> = tokens
            .iter()
            .zip(&kinds)
            .enumerate()
            .filter(|(_, (t, k))| k.is_special() && !t.is_empty())
            .map(|(i, (t, _))| (t.clone(), i as u32))
            .collect();
        specials.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.1.cmp(&b.1)));
        let (patterns, known) = pre_patterns(&pre_name);
        if !known {
            tracing::warn!(pre = %pre_name, "unknown tokenizer.ggml.pre; using the GPT-2 pre-tokenizer");
        }
        let pre = patterns
            .iter()
            .map(|p| {
                Regex::new(p).map_err(|e| Error::Tokenizer(format!("pre-tokenizer regex: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Tokenizer {
            tokens,
            kinds,
            pieces,
            vocab,
            merges,
            specials,
            byte_to_char,
            char_to_byte,
            pre_name,
            pre,
            bos,
            eos,
            eot,
            add_bos,
        })
    }

    /// Number of tokens in the vocabulary.
    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    /// The name of the pre-tokenizer (`tokenizer.ggml.pre`).
    pub fn pre_tokenizer(&self) -> &str {
        &self.pre_name
    }

    /// Beginning-of-sequence token, if the model has one.
    pub fn bos(&self) -> Option<u32> {
        self.bos
    }

    /// End-of-sequence token, if the model has one.
    pub fn eos(&self) -> Option<u32> {
        self.eos
    }

    /// Tokens that end a generation: EOS, EOT and the chat end marker `<|im_end|>` when present.
    pub fn end_tokens(&self) -> Vec<u32> {
        let mut out: Vec<u32> = [self.eos, self.eot].into_iter().flatten().collect();
        for name in ["<|im_end|>", "<|eot_id|>", "<|end|>", "<|endoftext|>"] {
            if let Some(id) = self.token_id(name) {
                if self.kinds[id as usize].is_special() {
                    out.push(id);
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The id of the token whose GGUF text is exactly `text` (e.g. `"<|im_start|>"`).
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.vocab.get(text).copied()
    }

    /// The kind of token `id` (Normal for ids outside the vocabulary).
    pub fn kind(&self, id: u32) -> TokenKind {
        self.kinds
            .get(id as usize)
            .copied()
            .unwrap_or(TokenKind::Normal)
    }

    /// The GGUF text of token `id` (byte-level encoded for normal tokens).
    pub fn token_text(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    /// The decoded bytes of one token (for control tokens: their literal text); empty for
    /// ids outside the vocabulary. A token may hold part of a UTF-8 sequence.
    pub fn token_str(&self, id: u32) -> &[u8] {
        self.pieces
            .get(id as usize)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Encodes plain text: special-token text such as `<|im_end|>` is tokenised as ordinary
    /// characters (safe for untrusted text). `add_special` prepends BOS when the model asks for it.
    pub fn encode(&self, text: &str, add_special: bool) -> Vec<u32> {
        self.encode_inner(text, add_special, false)
    }

    /// Encodes text in which control and user-defined tokens written literally (e.g.
    /// `<|im_start|>`) become their single ids, like llama.cpp's `parse_special`.
    pub fn encode_special(&self, text: &str, add_special: bool) -> Vec<u32> {
        self.encode_inner(text, add_special, true)
    }

    fn encode_inner(&self, text: &str, add_special: bool, parse_special: bool) -> Vec<u32> {
        let mut out = Vec::new();
        if add_special && self.add_bos {
            if let Some(b) = self.bos {
                out.push(b);
            }
        }
        if !parse_special {
            self.encode_plain(text, &mut out);
            return out;
        }
        let mut rest = text;
        let mut pos = 0usize;
        while pos < rest.len() {
            let hit = self
                .specials
                .iter()
                .find(|(s, _)| rest[pos..].starts_with(s.as_str()));
            match hit {
                Some((s, id)) => {
                    self.encode_plain(&rest[..pos], &mut out);
                    out.push(*id);
                    rest = &rest[pos + s.len()..];
                    pos = 0;
                }
                None => {
                    pos += rest[pos..].chars().next().map_or(1, char::len_utf8);
                }
            }
        }
        self.encode_plain(rest, &mut out);
        out
    }

    fn encode_plain(&self, text: &str, out: &mut Vec<u32>) {
        if text.is_empty() {
            return;
        }
        let mut pieces: Vec<&str> = vec![text];
        for re in &self.pre {
            let mut next = Vec::with_capacity(pieces.len() * 2);
            for piece in pieces {
                let mut last = 0usize;
                for m in re.find_iter(piece) {
                    let Ok(m) = m else { break };
                    if m.start() > last {
                        next.push(&piece[last..m.start()]);
                    }
                    if m.end() > m.start() {
                        next.push(m.as_str());
                    }
                    last = m.end();
                }
                if last < piece.len() {
                    next.push(&piece[last..]);
                }
            }
            pieces = next;
        }
        for piece in pieces {
            self.bpe(piece, out);
        }
    }

    fn bpe(&self, word: &str, out: &mut Vec<u32>) {
        let mut syms: Vec<u32> = Vec::with_capacity(word.len());
        let mut buf = [0u8; 4];
        for &b in word.as_bytes() {
            let c = self.byte_to_char[b as usize];
            match self.vocab.get(c.encode_utf8(&mut buf) as &str) {
                Some(&id) => syms.push(id),
                None => {
                    tracing::debug!(byte = b, "byte has no token; dropped");
                }
            }
        }
        loop {
            let mut best: Option<(u32, usize, u32)> = None;
            for i in 0..syms.len().saturating_sub(1) {
                if let Some(&(rank, merged)) = self.merges.get(&(syms[i], syms[i + 1])) {
                    if best.map_or(true, |(r, _, _)| rank < r) {
                        best = Some((rank, i, merged));
                    }
                }
            }
            let Some((_, i, merged)) = best else { break };
            syms[i] = merged;
            syms.remove(i + 1);
        }
        out.extend_from_slice(&syms);
    }

    /// Decodes ids to text, skipping control tokens; invalid UTF-8 becomes U+FFFD.
    pub fn decode(&self, ids: &[u32]) -> String {
        String::from_utf8_lossy(&self.decode_bytes(ids)).into_owned()
    }

    /// Decodes ids to raw bytes, skipping control tokens.
    pub fn decode_bytes(&self, ids: &[u32]) -> Vec<u8> {
        let mut out = Vec::new();
        for &id in ids {
            if self.kind(id) != TokenKind::Control {
                out.extend_from_slice(self.token_str(id));
            }
        }
        out
    }

    /// The byte-level char for byte `b` (the alphabet normal token texts are written in).
    pub fn byte_char(&self, b: u8) -> char {
        self.byte_to_char[b as usize]
    }

    /// True when `c` is a byte-level char.
    pub fn is_byte_char(&self, c: char) -> bool {
        self.char_to_byte.contains_key(&c)
    }
}

/// The parts a [`Tokenizer`] is built from (as stored in GGUF metadata).
#[derive(Debug, Clone, Default)]
pub struct TokenizerParts {
    /// Token texts, byte-level encoded for normal tokens (`tokenizer.ggml.tokens`).
    pub tokens: Vec<String>,
    /// Token kinds, one per token (`tokenizer.ggml.token_type`).
    pub kinds: Vec<TokenKind>,
    /// Merges as `"left right"`, highest priority first (`tokenizer.ggml.merges`).
    pub merges: Vec<String>,
    /// Pre-tokenizer name (`tokenizer.ggml.pre`), e.g. `"smollm"` or `"gpt2"`.
    pub pre: String,
    /// Beginning-of-sequence id.
    pub bos: Option<u32>,
    /// End-of-sequence id.
    pub eos: Option<u32>,
    /// End-of-turn id.
    pub eot: Option<u32>,
    /// Whether encoding with `add_special` prepends BOS.
    pub add_bos: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A byte-level vocabulary of the 256 byte chars, a few merges and two control tokens.
    fn tiny() -> Tokenizer {
        let table = byte_level_table();
        let mut tokens: Vec<String> = vec!["<|im_start|>".into(), "<|im_end|>".into()];
        let mut kinds = vec![TokenKind::Control, TokenKind::Control];
        for c in table {
            tokens.push(c.to_string());
            kinds.push(TokenKind::Normal);
        }
        let merges = vec![
            "h e".to_string(),
            "l l".into(),
            "he ll".into(),
            "Ġ w".into(),
        ];
        for m in &merges {
            tokens.push(m.replace(' ', ""));
            kinds.push(TokenKind::Normal);
        }
        Tokenizer::new(TokenizerParts {
            tokens,
            kinds,
            merges,
            pre: "smollm".into(),
            bos: None,
            eos: Some(1),
            eot: None,
            add_bos: false,
        })
        .unwrap()
    }

    #[test]
    fn round_trips_text_including_unicode_and_newlines() {
        let t = tiny();
        for s in [
            "hello world",
            "  leading\n\nnewlines\t",
            "héllo wörld 日本 🙂",
            "12, 345 [3,5,7]",
            "",
        ] {
            assert_eq!(t.decode(&t.encode(s, true)), s, "{s:?}");
        }
    }

    #[test]
    fn merges_apply_by_rank() {
        let t = tiny();
        let ids = t.encode("hello", false);
        let texts: Vec<&str> = ids.iter().map(|&i| t.token_text(i).unwrap()).collect();
        assert_eq!(texts, ["hell", "o"]);
    }

    #[test]
    fn digits_split_individually_for_smollm() {
        let t = tiny();
        let ids = t.encode("a 12", false);
        let texts: Vec<&str> = ids.iter().map(|&i| t.token_text(i).unwrap()).collect();
        assert_eq!(texts, ["a", "Ġ", "1", "2"]);
    }

    #[test]
    fn special_tokens_parse_only_when_asked() {
        let t = tiny();
        assert_eq!(
            t.encode_special("<|im_start|>he<|im_end|>", false),
            vec![0, t.token_id("he").unwrap(), 1]
        );
        let plain = t.encode("<|im_end|>", false);
        assert!(plain.len() > 1 && !plain.contains(&1));
        assert_eq!(t.decode(&plain), "<|im_end|>");
        assert_eq!(t.token_str(0), b"<|im_start|>");
        assert_eq!(t.decode(&[0, 1]), "");
    }

    #[test]
    fn bad_merge_line_is_an_error_naming_the_index() {
        let err = Tokenizer::new(TokenizerParts {
            tokens: vec!["a".into()],
            kinds: vec![TokenKind::Normal],
            merges: vec!["nospace".into()],
            pre: "gpt2".into(),
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("merges[0]"), "{err}");
    }
}
