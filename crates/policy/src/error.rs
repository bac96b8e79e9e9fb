//! Errors from building a policy out of a spec string (`sjf+easy`, `tetris:knob=0.3`, ...).

use thiserror::Error;

/// Why [`crate::build`] refused a spec.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The spec string was empty (or only whitespace).
    #[error("empty policy name; valid: {valid}")]
    Empty {
        /// Every valid ordering, mode and parameter, for the message.
        valid: String,
    },
    /// The ordering name (the part before `:` / `+`) is not known.
    #[error("unknown policy `{spec}`; valid: {valid}")]
    Unknown {
        /// The spec as given.
        spec: String,
        /// Every valid ordering, mode and parameter, for the message.
        valid: String,
    },
    /// The mode after `+` is not known.
    #[error("unknown mode `+{mode}` in policy `{spec}`; valid modes: {valid}")]
    UnknownMode {
        /// The spec as given.
        spec: String,
        /// The mode as given.
        mode: String,
        /// The valid modes.
        valid: String,
    },
    /// A `key=value` parameter names a key the ordering does not take.
    #[error("unknown parameter `{key}` for `{ordering}` in policy `{spec}`; valid: {valid}")]
    UnknownParam {
        /// The spec as given.
        spec: String,
        /// The ordering it was given to.
        ordering: String,
        /// The key as given.
        key: String,
        /// The parameters this ordering takes (may be "none").
        valid: String,
    },
    /// A parameter value did not parse or is out of range.
    #[error("bad value `{value}` for parameter `{key}` in policy `{spec}`: {reason}")]
    BadParam {
        /// The spec as given.
        spec: String,
        /// The parameter key.
        key: String,
        /// The value as given.
        value: String,
        /// What was expected.
        reason: String,
    },
    /// The spec is not of the shape `<ordering>[:k=v[,k=v...]][+<mode>]`.
    #[error("malformed policy `{spec}`: {reason}; expected <ordering>[:key=value[,key=value]][+<mode>], e.g. `sjf+easy` or `tetris:knob=0.3`")]
    Malformed {
        /// The spec as given.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },
}
