//! Which reactions are feedback: read by the ingress (only feedback is queued) and the worker
//! (which records it). Apart from `feedback` so that the ingress builds without the feedback
//! store and its AWS calls.

use shared::domain::Sentiment;

/// Reactions counted as positive unless FEEDBACK_POSITIVE_REACTIONS says otherwise.
pub const DEFAULT_POSITIVE: &[&str] = &["+1", "thumbsup"];
/// Reactions counted as negative unless FEEDBACK_NEGATIVE_REACTIONS says otherwise.
pub const DEFAULT_NEGATIVE: &[&str] = &["-1", "thumbsdown"];

/// Which reactions are feedback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedbackSettings {
    pub positive: Vec<String>,
    pub negative: Vec<String>,
}

impl Default for FeedbackSettings {
    fn default() -> Self {
        let owned = |l: &[&str]| l.iter().map(|s| s.to_string()).collect();
        FeedbackSettings { positive: owned(DEFAULT_POSITIVE), negative: owned(DEFAULT_NEGATIVE) }
    }
}

impl FeedbackSettings {
    /// Reads FEEDBACK_POSITIVE_REACTIONS and FEEDBACK_NEGATIVE_REACTIONS (comma-separated
    /// reaction names, colons optional); unset keeps the thumbs defaults.
    pub fn from_env() -> shared::Result<Self> {
        let mut s = FeedbackSettings::default();
        if let Some(v) = shared::config::optional("FEEDBACK_POSITIVE_REACTIONS") {
            s.positive = parse_list("FEEDBACK_POSITIVE_REACTIONS", &v)?;
        }
        if let Some(v) = shared::config::optional("FEEDBACK_NEGATIVE_REACTIONS") {
            s.negative = parse_list("FEEDBACK_NEGATIVE_REACTIONS", &v)?;
        }
        if let Some(both) = s.positive.iter().find(|p| s.negative.contains(p)) {
            return Err(shared::Error::Config(format!(
                "reaction {both:?} is in both FEEDBACK_POSITIVE_REACTIONS and FEEDBACK_NEGATIVE_REACTIONS"
            )));
        }
        Ok(s)
    }

    /// The sentiment of a reaction, if it is feedback (skin tones do not matter).
    pub fn sentiment(&self, reaction: &str) -> Option<Sentiment> {
        let base = base_reaction(reaction);
        if self.positive.iter().any(|p| p == base) {
            Some(Sentiment::Positive)
        } else if self.negative.iter().any(|n| n == base) {
            Some(Sentiment::Negative)
        } else {
            None
        }
    }
}

fn parse_list(var: &str, value: &str) -> shared::Result<Vec<String>> {
    let names: Vec<String> =
        value.split(',').map(|n| n.trim().trim_matches(':').to_string()).filter(|n| !n.is_empty()).collect();
    if names.is_empty() {
        return Err(shared::Error::Config(format!("{var} lists no reaction names: {value:?}")));
    }
    if let Some(bad) = names.iter().find(|n| n.contains(char::is_whitespace)) {
        return Err(shared::Error::Config(format!("{var} has a reaction name with whitespace: {bad:?}")));
    }
    Ok(names)
}

/// The reaction name without a skin tone (`+1::skin-tone-2` -> `+1`).
pub fn base_reaction(name: &str) -> &str {
    name.split("::").next().unwrap_or(name)
}
