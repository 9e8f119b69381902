//! The one place that decides what text looks like a secret, and how such text
//! is shown: never as itself.
//!
//! Every value the product copies from a manifest or a config into an ECS
//! document, and every message that may repeat such a value (errors, logs,
//! `/status`, reports), goes through here:
//!
//! - [`find`] / [`is_token_like`]: does the text hold something that looks like a
//!   credential (a Dynatrace token, an AWS access key, a JWT, a private key, a
//!   GitHub or Slack token, a password in a URL, or a long random-looking string)?
//! - [`describe`]: the shape of such a finding ("looks like a Dynatrace token
//!   (dt0c01.…, 96 chars)"), which names the kind and the length, never the value.
//! - [`shown`]: a value for a message: quoted and bounded when harmless, its
//!   shape when token-looking.
//! - [`scrub`]: a message with every token-looking part replaced by its shape,
//!   the last line of defence for text whose parts came from elsewhere (a parser's
//!   error message, an error chain).

use std::borrow::Cow;
use std::fmt;

/// What a token-looking part of a text looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `dt0c01.…`, `dt0s01.…`: a Dynatrace API, PaaS or tenant token.
    Dynatrace,
    /// `AKIA…` / `ASIA…`: an AWS access key ID.
    AwsAccessKey,
    /// `eyJ….eyJ…`: a JSON web token.
    Jwt,
    /// `-----BEGIN … PRIVATE KEY-----`.
    PrivateKey,
    /// `ghp_…`, `github_pat_…`.
    GitHub,
    /// `xoxb-…`, `xoxp-…`.
    Slack,
    /// `scheme://user:password@host`.
    UrlPassword,
    /// A long run of letters and digits of both cases that changes character
    /// class as often as random text does (an API key, a password).
    RandomLooking,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Self::Dynatrace => "a Dynatrace token",
            Self::AwsAccessKey => "an AWS access key",
            Self::Jwt => "a JSON web token",
            Self::PrivateKey => "a private key",
            Self::GitHub => "a GitHub token",
            Self::Slack => "a Slack token",
            Self::UrlPassword => "a URL with a password",
            Self::RandomLooking => "a random secret",
        }
    }
}

/// A token-looking part of a text: its kind and byte range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finding {
    pub kind: Kind,
    pub start: usize,
    pub end: usize,
}

/// Runs of at least this many letters and digits may be random-looking secrets.
const RANDOM_MIN_LEN: usize = 32;
/// Random base62 text changes class (upper/lower/digit) between neighbours about
/// 62 % of the time, CamelCase names about 30 %: the line between them.
const RANDOM_CLASS_CHANGES_PERCENT: usize = 45;

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// Extends `end` over bytes that `keep` accepts.
fn extend(b: &[u8], mut end: usize, keep: impl Fn(u8) -> bool) -> usize {
    while end < b.len() && keep(b[end]) {
        end += 1;
    }
    end
}

fn dynatrace_at(b: &[u8], i: usize) -> Option<usize> {
    let w = b.get(i..i + 7)?;
    let ok = w[0] == b'd'
        && w[1] == b't'
        && w[2] == b'0'
        && w[3].is_ascii_lowercase()
        && w[4].is_ascii_digit()
        && w[5].is_ascii_digit()
        && w[6] == b'.';
    // At least a few characters after the type: `dt0c01.…` (a shape shown in place
    // of a token) is not itself a token.
    if !ok {
        return None;
    }
    let body = extend(b, i + 7, |c| c.is_ascii_alphanumeric());
    (body - (i + 7) >= 3).then(|| extend(b, i + 7, |c| is_word(c) || c == b'.'))
}

fn aws_key_at(b: &[u8], i: usize) -> Option<usize> {
    let prefix = b.get(i..i + 4)?;
    if !matches!(prefix, b"AKIA" | b"ASIA") || (i > 0 && b[i - 1].is_ascii_alphanumeric()) {
        return None;
    }
    let end = extend(b, i + 4, |c| c.is_ascii_uppercase() || c.is_ascii_digit());
    (end - i == 20).then_some(end)
}

fn jwt_at(b: &[u8], i: usize) -> Option<usize> {
    if b.get(i..i + 3)? != b"eyJ" {
        return None;
    }
    let first = extend(b, i + 3, is_word);
    if first - i < 13 || b.get(first) != Some(&b'.') {
        return None;
    }
    let second = extend(b, first + 1, is_word);
    (second - first > 10).then(|| extend(b, second, |c| is_word(c) || c == b'.'))
}

fn prefixed_at(b: &[u8], i: usize, prefixes: &[&[u8]], min_rest: usize) -> Option<usize> {
    let p = prefixes.iter().find(|p| b[i..].starts_with(p))?;
    let end = extend(b, i + p.len(), is_word);
    (end - i - p.len() >= min_rest).then_some(end)
}

fn private_key_at(text: &str, i: usize) -> Option<usize> {
    let rest = &text[i..];
    if !rest.starts_with("-----BEGIN") {
        return None;
    }
    let header_end = rest[10..].find("-----")? + 10;
    if !rest[..header_end].contains("PRIVATE KEY") {
        return None;
    }
    // Up to the end marker, or the end of the text.
    let end = rest
        .find("-----END")
        .and_then(|e| rest[e + 8..].find("-----").map(|f| e + 8 + f + 5))
        .unwrap_or(rest.len());
    Some(i + end)
}

/// `://user:password@`: the user-info part, when it holds a password.
fn url_password_at(b: &[u8], i: usize) -> Option<(usize, usize)> {
    if b.get(i..i + 3)? != b"://" {
        return None;
    }
    let start = i + 3;
    let end = extend(b, start, |c| {
        !matches!(c, b'/' | b'@' | b'?' | b'#') && !c.is_ascii_whitespace() && c != b'`'
    });
    let info = &b[start..end];
    let colon = info.iter().position(|&c| c == b':')?;
    (b.get(end) == Some(&b'@') && colon + 1 < info.len()).then_some((start, end))
}

fn random_looking(run: &[u8]) -> bool {
    if run.len() < RANDOM_MIN_LEN {
        return false;
    }
    let class = |c: u8| {
        if c.is_ascii_uppercase() {
            1
        } else if c.is_ascii_lowercase() {
            2
        } else if c.is_ascii_digit() {
            3
        } else {
            0
        }
    };
    let (mut upper, mut lower, mut digit) = (false, false, false);
    for &c in run {
        match class(c) {
            1 => upper = true,
            2 => lower = true,
            3 => digit = true,
            _ => {}
        }
    }
    let changes = run
        .windows(2)
        .filter(|w| class(w[0]) != 0 && class(w[1]) != 0 && class(w[0]) != class(w[1]))
        .count();
    upper && lower && digit && changes * 100 >= (run.len() - 1) * RANDOM_CLASS_CHANGES_PERCENT
}

/// Every token-looking part of `text`, in order, not overlapping.
pub fn find_all(text: &str) -> Vec<Finding> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let here = if let Some(end) = dynatrace_at(b, i) {
            Some((Kind::Dynatrace, i, end))
        } else if let Some(end) = aws_key_at(b, i) {
            Some((Kind::AwsAccessKey, i, end))
        } else if let Some(end) = jwt_at(b, i) {
            Some((Kind::Jwt, i, end))
        } else if b[i] == b'-' && text.is_char_boundary(i) {
            private_key_at(text, i).map(|end| (Kind::PrivateKey, i, end))
        } else if let Some(end) =
            prefixed_at(b, i, &[b"ghp_", b"gho_", b"ghu_", b"ghs_", b"ghr_"], 30)
                .or_else(|| prefixed_at(b, i, &[b"github_pat_"], 20))
        {
            Some((Kind::GitHub, i, end))
        } else if let Some(end) = prefixed_at(
            b,
            i,
            &[b"xoxa-", b"xoxb-", b"xoxp-", b"xoxr-", b"xoxs-"],
            10,
        ) {
            Some((Kind::Slack, i, end))
        } else {
            url_password_at(b, i).map(|(s, e)| (Kind::UrlPassword, s, e))
        };
        if let Some((kind, start, end)) = here {
            out.push(Finding { kind, start, end });
            i = end.max(i + 1);
            continue;
        }
        if b[i].is_ascii_alphanumeric() && (i == 0 || !is_word(b[i - 1])) {
            let end = extend(b, i, is_word);
            if random_looking(&b[i..end]) {
                out.push(Finding {
                    kind: Kind::RandomLooking,
                    start: i,
                    end,
                });
                i = end;
                continue;
            }
        }
        i += 1;
    }
    out
}

/// The first token-looking part of `text`.
pub fn find(text: &str) -> Option<Finding> {
    find_all(text).into_iter().next()
}

/// Whether `text` holds anything that looks like a credential.
pub fn is_token_like(text: &str) -> bool {
    find(text).is_some()
}

/// The shape of a finding, never its value: `a Dynatrace token (dt0c01.…, 96 chars)`.
/// Only the public, fixed prefix of a kind (the token type) is shown.
pub fn describe(text: &str, f: &Finding) -> String {
    let len = text[f.start..f.end].chars().count();
    let prefix = match f.kind {
        Kind::Dynatrace => Some(&text[f.start..f.start + 7]),
        Kind::AwsAccessKey => Some(&text[f.start..f.start + 4]),
        Kind::Jwt => Some("eyJ"),
        Kind::GitHub | Kind::Slack => text[f.start..f.end]
            .find('_')
            .or_else(|| text[f.start..f.end].find('-'))
            .map(|p| &text[f.start..=f.start + p]),
        Kind::PrivateKey | Kind::UrlPassword | Kind::RandomLooking => None,
    };
    match prefix {
        Some(p) => format!("{} ({p}…, {len} chars)", f.kind.label()),
        None => format!("{} ({len} chars)", f.kind.label()),
    }
}

/// The shape of a value that may be a secret: what it looks like and how long
/// it is, never the value.
pub fn shape(value: &str) -> String {
    match find(value) {
        Some(f) => format!("something that looks like {}", describe(value, &f)),
        None => format!("a value of {} chars", value.chars().count()),
    }
}

/// Longest value repeated in a message; longer ones are cut.
const SHOWN_CHARS: usize = 64;

/// A value for a message: `` `value` `` with control characters escaped and cut
/// after 64 characters, or its shape when it looks like a secret.
pub fn shown(value: &str) -> String {
    if is_token_like(value) {
        return shape(value);
    }
    let count = value.chars().count();
    let head: String = value.chars().take(SHOWN_CHARS).collect();
    let escaped = head.escape_debug().to_string();
    if count > SHOWN_CHARS {
        format!("`{escaped}…` ({count} chars)")
    } else {
        format!("`{escaped}`")
    }
}

/// `text` with every token-looking part replaced by `«redacted: SHAPE»`.
pub fn scrub(text: &str) -> Cow<'_, str> {
    let found = find_all(text);
    if found.is_empty() {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for f in &found {
        out.push_str(&text[last..f.start]);
        out.push_str(&format!("«redacted: {}»", describe(text, f)));
        last = f.end;
    }
    out.push_str(&text[last..]);
    Cow::Owned(out)
}

/// A value that must never be printed: its `Debug` and `Display` show its shape.
#[derive(Clone, PartialEq, Eq)]
pub struct Redacted(pub String);

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&shape(&self.0))
    }
}

impl fmt::Display for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&shape(&self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The canary of the issue: a Dynatrace token of the documented shape.
    pub const CANARY: &str = "dt0c01.ABCDEFGHIJKLMNOPQRSTUVWX.ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789AB";

    #[test]
    fn the_kinds_people_paste_are_found() {
        for (text, kind) in [
            (CANARY, Kind::Dynatrace),
            ("x=dt0s01.ABC", Kind::Dynatrace),
            ("dt0c01.ABCDEFGH.IJKL", Kind::Dynatrace),
            ("AKIAIOSFODNN7EXAMPLE", Kind::AwsAccessKey),
            (
                "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.sig",
                Kind::Jwt,
            ),
            (
                "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----",
                Kind::PrivateKey,
            ),
            ("ghp_0123456789abcdefghijklmnopqrstuvwxyzAB", Kind::GitHub),
            ("xoxb-123456789012-abcdefghij", Kind::Slack),
            (
                "https://user:hunter2@proxy.internal:3128",
                Kind::UrlPassword,
            ),
            ("k=Zx8Qp2Lm9Vt4Rb7Nc1Hd6Jf3Ks5Wg0Ye", Kind::RandomLooking),
        ] {
            assert_eq!(find(text).map(|f| f.kind), Some(kind), "{text}");
        }
    }

    #[test]
    fn ordinary_values_are_not_secrets() {
        for text in [
            "abc12345",
            "https://abc12345.live.dynatrace.com:443/communication",
            "public.ecr.aws/dynatrace/dynatrace-activegate:1.301.70.20241127-162512",
            "repo/ag@sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            "arn:aws:secretsmanager:eu-central-1:123456789012:secret:dynatrace/tenant-token-AbCdEf",
            "DynatraceActiveGate2024ProductionEuCentral1",
            "MSGrouter,restInterface,kubernetes_monitoring",
            "/var/lib/dynatrace/secrets/tokens",
            "curl -fsk --max-time 2 https://127.0.0.1:9999/rest/state || exit 1",
            "dt0c1.x",
            "0123e4567-e89b-12d3-a456-426614174000",
            "https://host:9999/path",
        ] {
            assert_eq!(find(text), None, "{text}");
        }
    }

    #[test]
    fn the_shape_names_kind_prefix_and_length_only() {
        let d = shape(CANARY);
        assert_eq!(
            d,
            "something that looks like a Dynatrace token (dt0c01.…, 96 chars)"
        );
        assert!(!d.contains("ABCDEFGH"));
        assert_eq!(shape("hunter2"), "a value of 7 chars");
    }

    #[test]
    fn shown_quotes_bounds_and_escapes() {
        assert_eq!(shown("abc"), "`abc`");
        assert_eq!(shown("a\0b"), "`a\\0b`");
        let long = "a".repeat(1000);
        assert!(shown(&long).ends_with("…` (1000 chars)"));
        assert!(!shown(CANARY).contains("ABCDEFGH"));
    }

    #[test]
    fn scrub_replaces_every_finding_and_keeps_the_rest() {
        let text = format!("found `{CANARY}`, and AKIAIOSFODNN7EXAMPLE too");
        let s = scrub(&text);
        assert!(!s.contains("ABCDEFGH") && !s.contains("IOSFODNN"), "{s}");
        assert!(s.starts_with("found `«redacted: a Dynatrace token (dt0c01.…, 96 chars)»`"));
        assert!(s.ends_with(" too"));
        assert!(matches!(scrub("nothing here"), Cow::Borrowed(_)));
        // What scrub writes is not itself token-looking: scrubbing twice changes nothing.
        assert_eq!(scrub(&s), s);
    }

    #[test]
    fn finding_takes_linear_time() {
        for text in [
            "a".repeat(1 << 20),
            "dt0c01".repeat(1 << 17),
            "-----BEGIN PRIVATE KEY-----".repeat(1 << 14),
            "://a".repeat(1 << 18),
        ] {
            let started = std::time::Instant::now();
            let _ = find_all(&text);
            assert!(
                started.elapsed() < std::time::Duration::from_secs(2),
                "{}",
                &text[..12]
            );
        }
    }

    #[test]
    fn redacted_never_prints_its_value() {
        let r = Redacted(CANARY.into());
        assert!(!format!("{r} {r:?}").contains("ABCDEFGH"));
    }
}
