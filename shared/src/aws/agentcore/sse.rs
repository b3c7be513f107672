//! Server-sent events, as AgentCore Runtime relays an agent's streamed answer
//! (`text/event-stream`): `data:` lines, joined per event, events ended by a blank line.
//! Fed in arbitrary byte pieces (a network read may split a line or a UTF-8 sequence).

/// The longest event kept: an agent that streams one endless line is cut, never buffered whole.
pub const MAX_EVENT_BYTES: usize = 1 << 20;

/// An incremental SSE parser.
#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    data: Vec<u8>,
    has_data: bool,
    /// Events dropped for being over [`MAX_EVENT_BYTES`].
    pub oversized: usize,
}

impl SseParser {
    /// Takes `bytes` in; returns the data of every event they completed.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut events = Vec::new();
        for &b in bytes {
            if b == b'\n' {
                self.end_line(&mut events);
            } else if self.line.len() <= MAX_EVENT_BYTES {
                self.line.push(b);
            }
        }
        events
    }

    /// The stream ended: the data of a last event not followed by a blank line.
    pub fn finish(mut self) -> Option<String> {
        let mut events = Vec::new();
        if !self.line.is_empty() {
            self.end_line(&mut events);
        }
        self.dispatch(&mut events);
        events.pop()
    }

    fn end_line(&mut self, events: &mut Vec<String>) {
        let mut line = std::mem::take(&mut self.line);
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        if line.is_empty() {
            self.dispatch(events);
            return;
        }
        if line.len() > MAX_EVENT_BYTES {
            self.data.clear();
            self.has_data = false;
            self.oversized += 1;
            return;
        }
        let (field, value) = match line.iter().position(|&c| c == b':') {
            Some(0) => return, // a comment
            Some(i) => {
                let value = &line[i + 1..];
                (&line[..i], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (&line[..], &b""[..]),
        };
        if field == b"data" {
            if self.has_data {
                self.data.push(b'\n');
            }
            self.data.extend_from_slice(value);
            self.has_data = true;
            if self.data.len() > MAX_EVENT_BYTES {
                self.data.clear();
                self.has_data = false;
                self.oversized += 1;
            }
        }
        // `event:`, `id:`, `retry:` carry nothing this gateway uses.
    }

    fn dispatch(&mut self, events: &mut Vec<String>) {
        if self.has_data {
            events.push(String::from_utf8_lossy(&self.data).into_owned());
        }
        self.data.clear();
        self.has_data = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_data_lines_ended_by_a_blank_line() {
        let mut p = SseParser::default();
        let events =
            p.push(b"data: {\"data\": \"Hel\"}\n\n: keep-alive\n\nevent: x\ndata: a\ndata: b\r\n\r\ndata: tail");
        assert_eq!(events, ["{\"data\": \"Hel\"}", "a\nb"]);
        assert_eq!(p.finish().as_deref(), Some("tail"));
    }

    #[test]
    fn an_endless_line_is_dropped_not_buffered() {
        let mut p = SseParser::default();
        let mut big = b"data: ".to_vec();
        big.extend(std::iter::repeat_n(b'x', MAX_EVENT_BYTES + 10));
        big.extend(b"\n\ndata: ok\n\n");
        assert_eq!(p.push(&big), ["ok"]);
        assert_eq!(p.oversized, 1);
    }

    proptest::proptest! {
        /// However the bytes are split, the same events come out.
        #[test]
        fn splitting_never_changes_the_events(
            events in proptest::collection::vec("[^\r\n]{0,40}", 0..8),
            cuts in proptest::collection::vec(0usize..400, 0..6),
        ) {
            let body: String = events.iter().map(|e| format!("data: {e}\n\n")).collect();
            let bytes = body.as_bytes();
            let mut whole = SseParser::default();
            let expected = whole.push(bytes);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(bytes.len())).collect();
            cuts.sort_unstable();
            let mut split = SseParser::default();
            let mut got = Vec::new();
            let mut from = 0;
            for cut in cuts.into_iter().chain([bytes.len()]) {
                got.extend(split.push(&bytes[from..cut]));
                from = cut;
            }
            proptest::prop_assert_eq!(&got, &expected);
            proptest::prop_assert_eq!(expected.len(), events.len());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..500)) {
            let mut p = SseParser::default();
            let _ = p.push(&bytes);
            let _ = p.finish();
        }
    }
}
