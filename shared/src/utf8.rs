//! Text from a byte stream whose chunks may split a UTF-8 sequence (any agent backend).

/// Turns answer chunks (raw bytes, which may split a UTF-8 sequence) into text deltas: the
/// incomplete tail of a chunk is held back until the next one completes it.
#[derive(Debug, Default)]
pub struct Utf8Deltas {
    pending: Vec<u8>,
}

impl Utf8Deltas {
    /// The text `bytes` complete (empty when they only start a character).
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let valid = match std::str::from_utf8(&self.pending) {
            Ok(_) => self.pending.len(),
            // An invalid sequence (not just an unfinished one) is passed on, replaced.
            Err(e) if e.error_len().is_some() => self.pending.len(),
            Err(e) => e.valid_up_to(),
        };
        let done: Vec<u8> = self.pending.drain(..valid).collect();
        String::from_utf8_lossy(&done).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::Utf8Deltas;

    #[test]
    fn split_characters_wait_for_their_end() {
        let mut d = Utf8Deltas::default();
        let bytes = "né✓".as_bytes();
        assert_eq!(d.push(&bytes[..2]), "n");
        assert_eq!(d.push(&bytes[2..4]), "é");
        assert_eq!(d.push(&bytes[4..]), "✓");
        assert_eq!(d.push(b"ok"), "ok");
        assert_eq!(d.push(&[0xff, b'a']), "\u{fffd}a");
    }
}
