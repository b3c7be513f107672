//! How a streamed answer's Markdown is cut into `chat.appendStream` calls: never one call per
//! token. Text gathers while the last append is younger than the interval, then goes in one call
//! of at most [`MAX_STREAM_CALL_CHARS`]; what is left at the end goes with `chat.stopStream`
//! (after as many full-size appends as it takes). Pure, so its bounds are property-tested.

use std::time::{Duration, Instant};

use shared::ports::MAX_STREAM_CALL_CHARS;

/// The prefix of `text` of at most `max` characters (on a char boundary), and the rest.
pub fn split_at_chars(text: &str, max: usize) -> (&str, &str) {
    match text.char_indices().nth(max) {
        Some((at, _)) => text.split_at(at),
        None => (text, ""),
    }
}

/// What of the answer has been streamed, and when the last append went.
#[derive(Debug, Clone)]
pub struct Appender {
    /// The Markdown the message already shows (the start's text and every append).
    streamed: String,
    last: Instant,
    interval: Duration,
}

impl Appender {
    /// A stream started at `now` showing `started_with`; appends at most every `interval`.
    pub fn new(started_with: &str, now: Instant, interval: Duration) -> Self {
        Appender { streamed: started_with.to_string(), last: now, interval }
    }

    /// The Markdown the message shows so far.
    pub fn streamed(&self) -> &str {
        &self.streamed
    }

    /// When the next append may go.
    pub fn next_at(&self) -> Instant {
        self.last + self.interval
    }

    /// Whether `text` (the answer so far) still begins with what was streamed: false after the
    /// agent started over, when appending can no longer give the right answer.
    pub fn extends(&self, text: &str) -> bool {
        text.starts_with(&self.streamed)
    }

    /// The piece of `text` to append at `now`, if it is time and there is something new.
    pub fn due<'a>(&self, text: &'a str, now: Instant) -> Option<&'a str> {
        if now < self.next_at() || !self.extends(text) {
            return None;
        }
        let pending = &text[self.streamed.len()..];
        let (piece, _) = split_at_chars(pending, MAX_STREAM_CALL_CHARS);
        (!piece.is_empty()).then_some(piece)
    }

    /// Records that `piece` was appended at `now`.
    pub fn appended(&mut self, piece: &str, now: Instant) {
        self.streamed.push_str(piece);
        self.last = now;
    }

    /// Records a skipped append (rate limited): the next waits longer.
    pub fn back_off(&mut self, now: Instant) {
        self.last = now + self.interval;
    }

    /// How `closing` (the whole final Markdown) ends the stream: full-size appends, then the
    /// stop's piece (possibly empty). None when `closing` does not begin with what was streamed.
    pub fn closing<'a>(&self, closing: &'a str) -> Option<(Vec<&'a str>, &'a str)> {
        let mut rest = closing.strip_prefix(self.streamed.as_str())?;
        let mut appends = Vec::new();
        loop {
            let (piece, after) = split_at_chars(rest, MAX_STREAM_CALL_CHARS);
            if after.is_empty() {
                return Some((appends, piece));
            }
            appends.push(piece);
            rest = after;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const INTERVAL: Duration = Duration::from_millis(1500);

    #[test]
    fn text_gathers_until_the_interval_then_goes_in_one_call() {
        let t0 = Instant::now();
        let mut a = Appender::new("Hello", t0, INTERVAL);
        assert_eq!(a.due("Hello, wor", t0 + Duration::from_millis(100)), None, "too soon");
        let at = t0 + INTERVAL;
        assert_eq!(a.due("Hello, world", at), Some(", world"));
        a.appended(", world", at);
        assert_eq!(a.due("Hello, world", at + INTERVAL), None, "nothing new");
        assert_eq!(a.due("Something else", at + INTERVAL), None, "the agent started over");
        assert_eq!(a.closing("Hello, world!\n\n**Sources**"), Some((vec![], "!\n\n**Sources**")));
        assert_eq!(a.closing("Something else"), None);
    }

    #[test]
    fn a_long_end_is_cut_into_full_size_calls() {
        let a = Appender::new("", Instant::now(), INTERVAL);
        let text = "é".repeat(MAX_STREAM_CALL_CHARS * 2 + 5);
        let (appends, stop) = a.closing(&text).expect("extends");
        assert_eq!(appends.len(), 2);
        assert!(appends.iter().all(|p| p.chars().count() == MAX_STREAM_CALL_CHARS));
        assert_eq!(stop.chars().count(), 5);
    }

    proptest! {
        /// Any pieces of text, arriving at any pace: what the start, the appends and the stop
        /// carry adds up to the input exactly, no call carries more than Slack takes, and the
        /// calls are bounded by the time taken and the length, never by the number of pieces.
        #[test]
        fn appends_add_up_to_the_text_within_slacks_limits(
            pieces in proptest::collection::vec(("[a-zé *#\n]{0,40}|[x]{0,13000}", 0u64..2000), 0..60),
        ) {
            let t0 = Instant::now();
            let mut now = t0;
            let mut text = String::new();
            let mut a = Appender::new("", t0, INTERVAL);
            let mut calls: Vec<String> = Vec::new();
            for (piece, gap_ms) in &pieces {
                now += Duration::from_millis(*gap_ms);
                text.push_str(piece);
                if let Some(p) = a.due(&text, now) {
                    let p = p.to_string();
                    a.appended(&p, now);
                    calls.push(p);
                }
            }
            let (appends, stop) = a.closing(&text).expect("the text only grew");
            calls.extend(appends.iter().map(|p| p.to_string()));
            calls.push(stop.to_string());
            prop_assert_eq!(calls.concat(), text.clone());
            prop_assert!(calls.iter().all(|c| c.chars().count() <= MAX_STREAM_CALL_CHARS));
            let elapsed = now - t0;
            let bound = (elapsed.as_millis() / INTERVAL.as_millis()) as usize
                + text.chars().count() / MAX_STREAM_CALL_CHARS
                + 2;
            prop_assert!(calls.len() <= bound, "{} calls for {:?} and {} chars", calls.len(), elapsed, text.len());
        }
    }
}
