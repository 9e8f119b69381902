//! The config file as a tree of keys and values with their places, read before
//! the typed parse: every key and string is checked for text that looks like a
//! secret (a config holds ARNs and variable names, never tokens), and checks that
//! span several fields find the line and column of the field they name.

use toml::de::{DeTable, DeValue};

use crate::model::secret;

/// Fields where a random-looking value is expected: a hash, and the external ID of a
/// role's trust policy (often a UUID or random string; it is never printed either way).
const HASH_FIELDS: [&str; 2] = ["pin_sha256", "external_id"];

/// A finding of the scan: the field as a TOML path, its byte offset, and why.
pub struct Finding {
    pub field: String,
    pub offset: usize,
    pub message: String,
}

/// The parsed tree, or `None` when the text is no TOML (the typed parse then
/// reports the syntax error).
pub struct Tree<'i> {
    root: Option<toml::Spanned<DeTable<'i>>>,
}

impl<'i> Tree<'i> {
    pub fn parse(text: &'i str) -> Self {
        Self {
            root: DeTable::parse(text).ok(),
        }
    }

    /// The first key or string value that looks like a secret or holds a control
    /// character, with its place. Its value is never part of the message.
    pub fn scan(&self) -> Option<Finding> {
        let root = self.root.as_ref()?;
        scan_table(root.get_ref(), "", None)
    }

    /// The byte offset of the field at `path` (`["target", "0", "rollout",
    /// "maximum_percent"]`), or of the nearest table above it that exists.
    pub fn offset(&self, path: &[&str]) -> usize {
        let Some(root) = self.root.as_ref() else {
            return 0;
        };
        let mut best = 0;
        let mut here: &DeValue<'_> = &DeValue::Table(DeTable::new());
        let mut table = Some(root.get_ref());
        for seg in path {
            let next = match (table, here) {
                (Some(t), _) => t
                    .iter()
                    .find(|(k, _)| k.get_ref() == seg)
                    .map(|(k, v)| (k.span().start, v)),
                (None, DeValue::Array(a)) => seg
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| a.get(i))
                    .map(|v| (v.span().start, v)),
                _ => None,
            };
            let Some((at, v)) = next else { break };
            best = at;
            here = v.get_ref();
            table = match here {
                DeValue::Table(t) => Some(t),
                _ => None,
            };
        }
        best
    }
}

impl Tree<'_> {
    /// The TOML path (`target[1].logs.retention_days`) of the most specific key or value
    /// whose span holds `offset`: a value error names its key, an unknown-field error the
    /// key itself, an error about a table (a missing field) its header. An array's
    /// elements are named by the array, but tables in an array by their index. `None`
    /// without a tree (text the parser could not read) or when nothing holds the offset.
    pub fn path_at(&self, offset: usize) -> Option<String> {
        let root = self.root.as_ref()?;
        let mut best = None;
        visit_table(root.get_ref(), "", offset, &mut best);
        best.map(|(_, path)| path)
    }
}

/// The narrowest span holding the offset so far, and its path.
type Best = Option<(usize, String)>;

fn consider(span: std::ops::Range<usize>, offset: usize, path: &str, best: &mut Best) {
    let holds = span.contains(&offset) || (span.is_empty() && span.start == offset);
    if holds && best.as_ref().is_none_or(|(len, _)| span.len() <= *len) {
        *best = Some((span.len(), path.to_owned()));
    }
}

fn visit_table(t: &DeTable<'_>, prefix: &str, offset: usize, best: &mut Best) {
    for (k, v) in t.iter() {
        let path = join(prefix, k.get_ref());
        consider(k.span(), offset, &path, best);
        consider(v.span(), offset, &path, best);
        match v.get_ref() {
            DeValue::Table(t) => visit_table(t, &path, offset, best),
            DeValue::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    if let DeValue::Table(t) = x.get_ref() {
                        let indexed = format!("{path}[{i}]");
                        consider(x.span(), offset, &indexed, best);
                        visit_table(t, &indexed, offset, best);
                    }
                }
            }
            _ => {}
        }
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

fn check(field: &str, text: &str, is_key: bool) -> Option<String> {
    let last = field.rsplit('.').next().unwrap_or(field);
    if let Some(f) = secret::find(text)
        && !(f.kind == secret::Kind::RandomLooking && HASH_FIELDS.contains(&last))
    {
        return Some(format!(
            "this {} looks like {}: a config holds ARNs and the names of environment variables, never a token; store it in Secrets Manager or SSM Parameter Store and name its ARN under [target.secrets]",
            if is_key { "key" } else { "value" },
            secret::describe(text, &f)
        ));
    }
    text.chars()
        .find(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r'))
        .map(|c| {
            format!(
                "the {} holds the control character {}; config values are text",
                if is_key { "key" } else { "value" },
                c.escape_unicode()
            )
        })
}

fn scan_table(t: &DeTable<'_>, prefix: &str, _: Option<()>) -> Option<Finding> {
    for (k, v) in t.iter() {
        let key = k.get_ref();
        // A key is named by its position only when it is the problem.
        if let Some(message) = check(key, key, true) {
            return Some(Finding {
                field: join(prefix, "(a key)"),
                offset: k.span().start,
                message,
            });
        }
        let field = join(prefix, key);
        if let Some(f) = scan_value(v, &field) {
            return Some(f);
        }
    }
    None
}

fn scan_value(v: &toml::Spanned<DeValue<'_>>, field: &str) -> Option<Finding> {
    match v.get_ref() {
        DeValue::String(s) => check(field, s, false).map(|message| Finding {
            field: field.to_owned(),
            offset: v.span().start,
            message,
        }),
        DeValue::Table(t) => scan_table(t, field, None),
        DeValue::Array(a) => a
            .iter()
            .enumerate()
            .find_map(|(i, x)| scan_value(x, &format!("{field}[{i}]"))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_control_characters_are_found_with_their_field() {
        let t = "[[target]]\nname = \"a\"\n[target.environment]\nDT_TENANT = \"dt0c01.ABCDEFGHIJKLMNOPQRSTUVWX.ABCD\"\n";
        let tree = Tree::parse(t);
        let f = tree.scan().expect("found");
        assert_eq!(f.field, "target[0].environment.DT_TENANT");
        assert!(
            f.message.contains("a Dynatrace token (dt0c01.…"),
            "{}",
            f.message
        );
        assert!(!f.message.contains("ABCDEFGH"));
        let tree = Tree::parse("a = \"x\\u0000y\"\n");
        assert!(
            tree.scan()
                .expect("found")
                .message
                .contains("control character")
        );
        assert!(
            Tree::parse("pin_sha256 = \"Zx8Qp2Lm9Vt4Rb7Nc1Hd6Jf3Ks5Wg0YeAbCdEfGhIjK\"\n")
                .scan()
                .is_none()
        );
    }

    #[test]
    fn paths_come_from_the_parsers_spans() {
        let t = "[aws]\nmax_attempts = 3\n[[target]]\nname = \"a\"\n[[target]]\nname = \"b\"\nsubnets = [\n  \"x\",\n  \"y\",\n]\n[target.logs]\ngroup = \"g\"\n";
        let tree = Tree::parse(t);
        let at = |needle: &str| tree.path_at(t.find(needle).expect("in the text"));
        assert_eq!(
            at("3").as_deref(),
            Some("aws.max_attempts"),
            "a value names its key"
        );
        assert_eq!(
            at("max_attempts").as_deref(),
            Some("aws.max_attempts"),
            "a key itself"
        );
        assert_eq!(at("\"b\"").as_deref(), Some("target[1].name"));
        assert_eq!(
            at("\"y\"").as_deref(),
            Some("target[1].subnets"),
            "an element: its array"
        );
        assert_eq!(
            at("[target.logs]").as_deref(),
            Some("target[1].logs"),
            "a header: its table"
        );
        assert_eq!(at("\"g\"").as_deref(), Some("target[1].logs.group"));
        assert!(
            Tree::parse("[aws]\n[aws]\n").path_at(1).is_none(),
            "no tree: no path"
        );
    }

    #[test]
    fn offsets_fall_back_to_the_nearest_table() {
        let t = "[[target]]\nname = \"a\"\n[target.rollout]\nmaximum_percent = 50\n";
        let tree = Tree::parse(t);
        assert_eq!(
            &t[tree.offset(&["target", "0", "rollout", "maximum_percent"])..][..15],
            "maximum_percent"
        );
        let off = tree.offset(&["target", "0", "rollout", "minimum_healthy_percent"]);
        assert!(t[off..].starts_with("rollout"), "{}", &t[off..]);
    }
}
