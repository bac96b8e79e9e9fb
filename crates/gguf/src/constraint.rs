//! Constrained decoding: a [`Constraint`] says which token pieces may extend the output so far
//! and when the output is complete; the engine masks every other token's logit to −∞.
//!
//! [`ScheduleConstraint`] accepts exactly the JSON arrays of distinct ids drawn from an allowed
//! set (`[3,5,7]`, `[]`), at most `max_items` long, so even a random-weight model produces a
//! parseable schedule naming only waiting tasks. It never reaches a dead end: every state has an
//! allowed single-character continuation, and every path ends within a bounded number of bytes.

use std::collections::BTreeSet;

/// A language the generated text must belong to, checked incrementally over bytes.
///
/// The engine calls [`Constraint::reset`] once per generation, then at each step asks
/// [`Constraint::allows`] for candidate tokens' decoded bytes (a token is allowed only if its
/// whole piece is a valid continuation), appends the chosen one with [`Constraint::advance`], and
/// stops when [`Constraint::is_complete`] holds.
pub trait Constraint {
    /// Forgets all accepted text: a new generation starts.
    fn reset(&mut self);
    /// The bytes any accepted output is made of, when the language has a small alphabet; the
    /// engine then checks only vocabulary tokens made of these bytes (computed once per model).
    fn alphabet(&self) -> Option<Vec<u8>> {
        None
    }
    /// Whether `piece` (one token's decoded bytes, non-empty) may follow the accepted text.
    fn allows(&self, piece: &[u8]) -> bool;
    /// Appends `piece` (one that [`Constraint::allows`] accepted).
    fn advance(&mut self, piece: &[u8]);
    /// True when the output is complete: nothing more may follow and generation stops.
    fn is_complete(&self) -> bool;
    /// True when the model may end the output here with an end-of-generation token.
    fn may_end(&self) -> bool {
        self.is_complete()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Expect `[`.
    Start,
    /// After `[`: an id's first digit or `]`.
    Open,
    /// Inside an id: digit, `,` or `]`.
    Id,
    /// After `,`: an id's first digit (or one space when spaces are allowed).
    Comma,
    /// After `, `: an id's first digit.
    CommaSpace,
    /// After the closing `]`.
    Done,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Cursor {
    phase: Phase,
    current: String,
    items: usize,
}

/// Accepts JSON arrays of distinct allowed ids: `[` (id (`,` id)*)? `]`, ids in canonical
/// decimal, at most `max_items` of them, optionally with one space after each comma.
#[derive(Debug, Clone)]
pub struct ScheduleConstraint {
    allowed: BTreeSet<String>,
    max_items: usize,
    spaces: bool,
    cursor: Cursor,
    used: BTreeSet<String>,
    text: Vec<u8>,
}

impl ScheduleConstraint {
    /// A whitespace-free schedule of at most `max_items` distinct ids from `allowed_ids`.
    pub fn new(allowed_ids: &[u64], max_items: usize) -> Self {
        ScheduleConstraint {
            allowed: allowed_ids.iter().map(u64::to_string).collect(),
            max_items,
            spaces: false,
            cursor: Cursor {
                phase: Phase::Start,
                current: String::new(),
                items: 0,
            },
            used: BTreeSet::new(),
            text: Vec::new(),
        }
    }

    /// Also accept one space after each comma (`[3, 5]`).
    pub fn with_spaces(mut self, spaces: bool) -> Self {
        self.spaces = spaces;
        self
    }

    /// The text accepted so far.
    pub fn text(&self) -> &[u8] {
        &self.text
    }

    /// The ids completed so far, as a sorted set (use [`parse_schedule`] on the output for
    /// their order).
    pub fn used(&self) -> impl Iterator<Item = &str> {
        self.used.iter().map(String::as_str)
    }

    fn is_free(&self, id: &str, extra: &[String]) -> bool {
        self.allowed.contains(id) && !self.used.contains(id) && !extra.iter().any(|e| e == id)
    }

    fn has_free_with_prefix(&self, prefix: &str, extra: &[String]) -> bool {
        self.allowed
            .range::<str, _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .take_while(|s| s.starts_with(prefix))
            .any(|s| !self.used.contains(s) && !extra.iter().any(|e| e == s))
    }

    fn has_free_other_than(&self, extra: &[String]) -> bool {
        self.allowed
            .iter()
            .any(|s| !self.used.contains(s) && !extra.iter().any(|e| e == s))
    }

    /// One byte; `extra` collects ids completed within the current piece.
    fn step(&self, c: &mut Cursor, b: u8, extra: &mut Vec<String>) -> bool {
        let digit = b.is_ascii_digit();
        match (c.phase, b) {
            (Phase::Start, b'[') => c.phase = Phase::Open,
            (Phase::Open | Phase::Comma | Phase::CommaSpace, _) if digit => {
                let first = char::from(b).to_string();
                if c.items >= self.max_items || !self.has_free_with_prefix(&first, extra) {
                    return false;
                }
                c.current = first;
                c.phase = Phase::Id;
            }
            (Phase::Open, b']') => c.phase = Phase::Done,
            (Phase::Comma, b' ') if self.spaces => c.phase = Phase::CommaSpace,
            (Phase::Id, _) if digit => {
                c.current.push(char::from(b));
                if !self.has_free_with_prefix(&c.current, extra) {
                    return false;
                }
            }
            (Phase::Id, b',' | b']') => {
                if !self.is_free(&c.current, extra) {
                    return false;
                }
                extra.push(std::mem::take(&mut c.current));
                c.items += 1;
                if b == b']' {
                    c.phase = Phase::Done;
                } else {
                    if c.items >= self.max_items || !self.has_free_other_than(extra) {
                        return false;
                    }
                    c.phase = Phase::Comma;
                }
            }
            _ => return false,
        }
        true
    }
}

impl Constraint for ScheduleConstraint {
    fn reset(&mut self) {
        self.cursor = Cursor {
            phase: Phase::Start,
            current: String::new(),
            items: 0,
        };
        self.used.clear();
        self.text.clear();
    }

    fn alphabet(&self) -> Option<Vec<u8>> {
        let mut a = b"0123456789,[]".to_vec();
        if self.spaces {
            a.push(b' ');
        }
        Some(a)
    }

    fn allows(&self, piece: &[u8]) -> bool {
        if piece.is_empty() {
            return false;
        }
        let mut c = self.cursor.clone();
        let mut extra = Vec::new();
        piece.iter().all(|&b| self.step(&mut c, b, &mut extra))
    }

    fn advance(&mut self, piece: &[u8]) {
        let mut c = self.cursor.clone();
        let mut extra = Vec::new();
        for &b in piece {
            if !self.step(&mut c, b, &mut extra) {
                tracing::warn!(piece = ?String::from_utf8_lossy(piece), "advance with a piece the constraint rejects");
                return;
            }
        }
        self.cursor = c;
        self.used.extend(extra);
        self.text.extend_from_slice(piece);
    }

    fn is_complete(&self) -> bool {
        self.cursor.phase == Phase::Done
    }
}

/// Parses a schedule `[3,5,7]` (whitespace allowed) into ids; `None` when malformed.
pub fn parse_schedule(text: &str) -> Option<Vec<u64>> {
    let inner = text.trim().strip_prefix('[')?.strip_suffix(']')?.trim();
    if inner.is_empty() {
        return Some(Vec::new());
    }
    inner
        .split(',')
        .map(|s| {
            let s = s.trim();
            if s.is_empty()
                || !s.bytes().all(|b| b.is_ascii_digit())
                || (s.len() > 1 && s.starts_with('0'))
            {
                return None;
            }
            s.parse().ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepts(c: &mut ScheduleConstraint, text: &str) -> bool {
        c.reset();
        for b in text.bytes() {
            if !c.allows(&[b]) {
                return false;
            }
            c.advance(&[b]);
        }
        c.is_complete()
    }

    #[test]
    fn accepts_exactly_distinct_allowed_ids() {
        let mut c = ScheduleConstraint::new(&[3, 5, 7, 12], 3);
        for (text, ok) in [
            ("[]", true),
            ("[3]", true),
            ("[3,5,7]", true),
            ("[12,3]", true),
            ("[3,3]", false),
            ("[4]", false),
            ("[1]", false),
            ("[3,5,7,12]", false),
            ("[3, 5]", false),
            ("[03]", false),
            ("[3,]", false),
            ("[", false),
            ("3", false),
        ] {
            assert_eq!(accepts(&mut c, text), ok, "{text}");
        }
        let mut c = c.with_spaces(true);
        assert!(accepts(&mut c, "[3, 5]"));
        assert!(!accepts(&mut c, "[3,  5]"));
    }

    #[test]
    fn multi_byte_pieces_are_checked_whole() {
        let mut c = ScheduleConstraint::new(&[3, 5], 5);
        assert!(c.allows(b"[3,"));
        assert!(!c.allows(b"[3,3"));
        assert!(!c.allows(b"[3]]"));
        c.advance(b"[3,5");
        assert!(!c.allows(b","), "no id left after 3 and 5");
        assert!(c.allows(b"]"));
        c.advance(b"]");
        assert!(c.is_complete());
        assert_eq!(
            parse_schedule(std::str::from_utf8(c.text()).unwrap()),
            Some(vec![3, 5])
        );
    }

    #[test]
    fn empty_allowed_set_or_zero_items_only_allows_empty_array() {
        for mut c in [
            ScheduleConstraint::new(&[], 4),
            ScheduleConstraint::new(&[1, 2], 0),
        ] {
            assert!(accepts(&mut c, "[]"));
            assert!(!accepts(&mut c, "[1]"));
        }
    }

    #[test]
    fn parse_schedule_is_strict() {
        assert_eq!(parse_schedule(" [1, 2,3] "), Some(vec![1, 2, 3]));
        assert_eq!(parse_schedule("[]"), Some(vec![]));
        for bad in ["", "[", "[1,]", "[a]", "[01]", "1,2", "[-1]"] {
            assert_eq!(parse_schedule(bad), None, "{bad}");
        }
    }
}
