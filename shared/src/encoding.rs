//! Percent-encoding, once: the Slack interactive payloads (`payload=<form-encoded JSON>`), the
//! admin API's path and query parameters, and the local fakes' form bodies all decode here.

/// How `+` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plus {
    /// Form encoding (`application/x-www-form-urlencoded`, query strings): a space.
    Space,
    /// A URL path: itself.
    Literal,
}

/// Decodes `%XX` (exactly two hex digits; `%+1` is not an escape) and, per `plus`, `+`; a
/// malformed escape is kept as it is. Total: never fails, whatever the bytes.
pub fn percent_decode(input: &[u8], plus: Plus) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'+' if plus == Plus::Space => out.push(b' '),
            b'%' => match (input.get(i + 1).and_then(|b| hex(*b)), input.get(i + 2).and_then(|b| hex(*b))) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// [`percent_decode`] as text (invalid UTF-8 replaced).
pub fn percent_decode_str(input: &str, plus: Plus) -> String {
    String::from_utf8_lossy(&percent_decode(input.as_bytes(), plus)).into_owned()
}

/// Form-encodes `text`: unreserved bytes as they are, a space as `+`, the rest as `%XX`.
pub fn form_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn escapes_plus_and_malformed_input() {
        assert_eq!(percent_decode_str("a%2Fb+c", Plus::Space), "a/b c");
        assert_eq!(percent_decode_str("a%2Fb+c", Plus::Literal), "a/b+c");
        assert_eq!(percent_decode_str("%zz%4", Plus::Space), "%zz%4");
        assert_eq!(percent_decode_str("%+1%-1%+f", Plus::Literal), "%+1%-1%+f", "a sign is no hex digit");
        assert_eq!(percent_decode(b"%FF%fe", Plus::Space), vec![0xFF, 0xFE]);
    }

    proptest! {
        #[test]
        fn form_encoding_round_trips(s in any::<String>()) {
            prop_assert_eq!(percent_decode_str(&form_encode(&s), Plus::Space), s);
        }

        #[test]
        fn decoding_never_grows_and_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            prop_assert!(percent_decode(&bytes, Plus::Space).len() <= bytes.len());
        }
    }
}
