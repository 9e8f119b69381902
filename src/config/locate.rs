//! Where a config error is: line, column and the field as a TOML path, from the
//! TOML parser's spans; and its message, bounded and scrubbed of secrets.

use super::raw;
use super::{ConfigError, Place};

/// Places refusals in one config text.
pub(super) struct Locator<'a> {
    path: &'a str,
    text: &'a str,
    tree: &'a raw::Tree<'a>,
}

impl<'a> Locator<'a> {
    pub fn new(path: &'a str, text: &'a str, tree: &'a raw::Tree<'a>) -> Self {
        Self { path, text, tree }
    }

    /// A refusal at a byte offset.
    pub fn offset(&self, offset: usize, field: String, message: String) -> ConfigError {
        let (line, column) = line_column(self.text, offset);
        ConfigError::Invalid {
            path: self.path.to_owned(),
            line,
            column,
            field,
            message,
        }
    }

    /// A refusal at the field `segments` (`["target", "0", "name"]`), or at the nearest
    /// table above it that was written.
    pub fn field(&self, segments: &[&str], field: String, message: String) -> ConfigError {
        self.offset(self.tree.offset(segments), field, message)
    }

    /// A refusal at `rest` in the `i`-th target, named `target[i].rest`.
    pub fn in_target(&self, i: usize, rest: &[&str], message: String) -> ConfigError {
        let index = i.to_string();
        let segments: Vec<&str> = ["target", index.as_str()]
            .into_iter()
            .chain(rest.iter().copied())
            .collect();
        self.field(
            &segments,
            format!("target[{i}].{}", rest.join(".")),
            message,
        )
    }

    /// Where `key` (`network.subnets`) of the `i`-th target was written.
    pub fn place_in_target(&self, i: usize, key: &str) -> Place {
        let index = i.to_string();
        let segments: Vec<&str> = ["target", index.as_str()]
            .into_iter()
            .chain(key.split('.'))
            .collect();
        let (line, column) = line_column(self.text, self.tree.offset(&segments));
        Place {
            file: self.path.to_owned(),
            line: line as u64,
            column: column as u64,
        }
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..floor_char_boundary(text, offset)];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |p| p + 1);
    (line, before[line_start..].chars().count() + 1)
}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The key of a `key = value` line, if it is one.
fn key_of(line: &str) -> Option<String> {
    let t = line.trim_start();
    if t.starts_with('[') || t.starts_with('#') {
        return None;
    }
    let (k, _) = t.split_once('=')?;
    let k = k.trim().trim_matches('"');
    let ok = !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
    ok.then(|| k.to_owned())
}

/// For text without a tree: the TOML path of the key whose value (or name) starts at
/// `offset`, read from the lines around it, e.g.
/// `target[1].logs.retention_days`: the nearest table header above it, with
/// the index of its `[[target]]`, plus the key.
fn field_at(text: &str, offset: usize) -> String {
    let offset = floor_char_boundary(text, offset.min(text.len()));
    let line_start = text[..offset].rfind('\n').map_or(0, |p| p + 1);
    let line_end = text[offset..].find('\n').map_or(text.len(), |p| offset + p);
    let line = &text[line_start..line_end];
    let before = &text[line_start..offset];
    // A value: the key on its line. A key (unknown-field errors point at it): the word there.
    let mut key = if before.contains('=') {
        key_of(line)
    } else if before.trim().is_empty() && !line.trim_start().starts_with('[') {
        let word: String = text[offset..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
            .collect();
        (!word.is_empty()).then_some(word)
    } else {
        None
    };
    let mut above: Vec<&str> = text[..line_start].lines().collect();
    if line.trim_start().starts_with('[') {
        // An error about a table header (a duplicate table): the header is the field.
        above.push(line);
    }
    let mut header = String::new();
    let mut header_index = 0;
    for (i, l) in above.iter().enumerate().rev() {
        let t = l.trim();
        if t.starts_with('[') {
            header = t
                .trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or("")
                .trim()
                .to_owned();
            header_index = i;
            break;
        }
        // Inside a multi-line array: the key that opened it.
        if key.is_none() {
            key = key_of(l);
        }
    }
    if header == "target" || header.starts_with("target.") {
        let n = above[..=header_index]
            .iter()
            .filter(|l| l.trim() == "[[target]]")
            .count();
        header = format!(
            "target[{}]{}",
            n.saturating_sub(1),
            &header["target".len()..]
        );
    }
    match (header.is_empty(), key) {
        (true, Some(k)) => k,
        (false, Some(k)) => format!("{header}.{k}"),
        (false, None) => header,
        (true, None) => "(top level)".into(),
    }
}

/// Adds "did you mean" to an unknown-field message.
fn suggest(message: &str) -> String {
    let Some(rest) = message.strip_prefix("unknown field `") else {
        return message.to_owned();
    };
    let Some((unknown, expected)) = rest.split_once('`') else {
        return message.to_owned();
    };
    let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    let best = candidates
        .iter()
        .map(|c| {
            (
                strsim::levenshtein(&unknown.to_ascii_lowercase(), &c.to_ascii_lowercase()),
                *c,
            )
        })
        .min();
    match best {
        Some((d, c)) if d <= (unknown.len() / 3).max(2) => {
            format!("{message}; did you mean `{c}`?")
        }
        _ => message.to_owned(),
    }
}

/// Whether a field names or holds a secret: its value is never repeated.
fn is_secret_field(field: &str) -> bool {
    field.contains("secrets.")
        || field.contains("environment.DT_")
        || field.starts_with("DT_")
        || field.ends_with("external_id")
}

/// A parser error as a located config error: the place from the error's span, the
/// field from the place, a message that never repeats a secret's value.
pub(super) fn invalid(
    path: &str,
    text: &str,
    tree: &raw::Tree<'_>,
    e: &toml::de::Error,
) -> ConfigError {
    let start = e.span().map_or(0, |s| s.start);
    let (line, column) = line_column(text, start);
    // The parser's spans name the field; only text the parser could not make a tree of
    // (a syntax error, a duplicate key) is read line by line.
    let field = if e.span().is_some() {
        tree.path_at(start).unwrap_or_else(|| field_at(text, start))
    } else {
        "(file)".into()
    };
    let mut message = suggest(e.message());
    // A parser's message may quote the value ("invalid type: string \"…\""): for a
    // field that names a secret, the value as written is replaced by its shape.
    if is_secret_field(&field)
        && let Some(span) = e.span()
    {
        let end = floor_char_boundary(text, span.end.min(text.len()));
        let raw = &text[floor_char_boundary(text, span.start)..end];
        let inner = raw.trim().trim_matches(|c| c == '"' || c == '\'');
        for v in [raw, inner] {
            if !v.is_empty() {
                message = message.replace(v, &crate::model::secret::shape(inner));
            }
        }
    }
    ConfigError::Invalid {
        path: path.to_owned(),
        line,
        column,
        field: bounded(&crate::model::secret::scrub(&field), 128),
        message: bound_quotes(&crate::model::secret::scrub(&message)),
    }
}

/// At most `max` characters, with the length of the rest.
fn bounded(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        s.to_owned()
    } else {
        format!("{}… ({n} chars)", s.chars().take(max).collect::<String>())
    }
}

/// A parser's message with every quoted part (between backticks or double quotes)
/// cut to 64 characters: a key or value of a megabyte is not repeated.
fn bound_quotes(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(4096));
    let mut rest = message;
    while let Some(open) = rest.find(['`', '"']) {
        let quote = rest[open..].chars().next().expect("found above");
        out.push_str(&rest[..=open]);
        rest = &rest[open + 1..];
        let close = rest.find(quote).unwrap_or(rest.len());
        out.push_str(&bounded(&rest[..close], 64));
        rest = &rest[close..];
        if let Some(q) = rest.strip_prefix(quote) {
            out.push(quote);
            rest = q;
        }
    }
    out.push_str(rest);
    bounded(&out, 2048)
}
