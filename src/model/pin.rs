//! A certificate pin: the SHA-256 of a public key (SubjectPublicKeyInfo), as a config gives it
//! (`probe.pin_sha256`) and the prober checks it.

/// `sha256/`-prefixed or bare, hex or base64 → the 32 bytes of a SHA-256.
pub fn parse(text: &str) -> Option<[u8; 32]> {
    let t = text
        .trim()
        .trim_start_matches("sha256/")
        .trim_start_matches("sha256//");
    if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
        let mut out = [0u8; 32];
        for (i, chunk) in t.as_bytes().chunks(2).enumerate() {
            out[i] = u8::from_str_radix(std::str::from_utf8(chunk).ok()?, 16).ok()?;
        }
        return Some(out);
    }
    base64_decode(t)?.try_into().ok()
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for b in s.bytes().filter(|b| *b != b'=') {
        let v = u32::try_from(ALPHABET.iter().position(|a| *a == b)?).ok()?;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from(acc >> bits).ok()?);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::parse as parse_pin;

    #[test]
    fn pins_parse_from_hex_and_base64() {
        let hex = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        let bytes = parse_pin(hex).expect("hex");
        assert_eq!(bytes[1], 0x11);
        // The same 32 bytes in base64.
        let b64 = "ABEiM0RVZneImaq7zN3u/wARIjNEVWZ3iJmqu8zd7v8=";
        assert_eq!(parse_pin(b64), Some(bytes));
        assert_eq!(parse_pin(&format!("sha256/{b64}")), Some(bytes));
        assert_eq!(parse_pin("abc"), None);
        assert_eq!(parse_pin("not base64 at all!"), None);
    }
}
