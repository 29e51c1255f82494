//! Small string helpers several modules and crates need: cutting text to a byte budget without
//! splitting a character, and lower-case hex of a digest.

/// Cuts `s` to at most `max` bytes at a character boundary; true when something was cut.
pub fn truncate_at_char_boundary(s: &mut String, max: usize) -> bool {
    if s.len() <= max {
        return false;
    }
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s.truncate(cut);
    true
}

/// Lower-case hex of a digest. `hex::encode` collects one `char` at a time; this writes through a
/// byte table, and runs three times on every ingested event (signature, content digest, key hash).
pub fn hex_digest(bytes: &[u8]) -> String {
    let mut out = vec![0u8; bytes.len() * 2];
    // The buffer is exactly twice the input, the only length `encode_to_slice` refuses otherwise.
    if hex::encode_to_slice(bytes, &mut out).is_err() {
        return hex::encode(bytes);
    }
    String::from_utf8(out).unwrap_or_else(|_| hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    #[test]
    fn hex_digest_is_lower_case_hex_of_every_byte() {
        assert_eq!(hex_digest(&[0x00, 0x0f, 0xa0, 0xff]), "000fa0ff");
        let digest = Sha256::digest(b"sluice");
        assert_eq!(hex_digest(&digest), hex::encode(digest));
        assert_eq!(hex_digest(&[]), "");
    }

    #[test]
    fn truncation_never_splits_a_character() {
        let mut s = "aé".repeat(3); // 9 bytes: a(1) é(2)
        assert!(truncate_at_char_boundary(&mut s, 5));
        assert_eq!(s, "aéa");
        let mut short = "abc".to_owned();
        assert!(!truncate_at_char_boundary(&mut short, 3));
        assert_eq!(short, "abc");
        let mut one = "é".to_owned();
        assert!(truncate_at_char_boundary(&mut one, 1));
        assert_eq!(one, "");
    }
}
