//! The state every mapping step shares: the manifest, the settings, the
//! ActiveGate container with its two field paths, and the report being written.

use serde_saphyr::Spanned;

use super::manifest::{Container, Manifest, Where};
use super::report::{Action, Report};
use super::{Settings, TranslateError};
use crate::model::limits::Violation;
use crate::model::secret;

/// Translation state. Built once the ActiveGate container is known, so that a
/// step needs nothing but this and the container definition it fills.
pub(super) struct Ctx<'a> {
    pub(super) m: &'a Manifest,
    pub(super) s: &'a Settings,
    /// The ActiveGate container: the one container translated.
    pub(super) ag: &'a Container,
    /// `containers[NAME]`: where the container's fields are in the pod spec.
    pub(super) cpath: String,
    /// `containerDefinitions[NAME]`: where they go in the task definition.
    pub(super) tpath: String,
    pub(super) report: Report,
    /// `spec.template.spec`
    pod_path: String,
    /// Where each document field came from: (document field, place, source field),
    /// so that a limit found on the whole document points at its input.
    origins: Vec<(String, Where, String)>,
}

/// A field path for a message: a bracketed part longer than 64 characters (a
/// 1 MB container name) is cut, and nothing token-looking is kept.
pub(super) fn short_path(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find(']').map(|c| open + c) else {
            break;
        };
        let inner = &rest[open + 1..close];
        if inner.chars().count() > 64 {
            out.push_str(&format!("[…{} chars]", inner.chars().count()));
        } else {
            out.push_str(&rest[open..=close]);
        }
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    let out: String = if out.chars().count() > 512 {
        out.chars().take(512).chain("…".chars()).collect()
    } else {
        out
    };
    secret::scrub(&out).into_owned()
}

impl<'a> Ctx<'a> {
    pub(super) fn new(m: &'a Manifest, s: &'a Settings, ag: &'a Container) -> Self {
        let name = &ag.name.value;
        Ctx {
            m,
            s,
            ag,
            cpath: format!("containers[{name}]"),
            tpath: format!("containerDefinitions[{name}]"),
            report: Report::default(),
            pod_path: "spec.template.spec".into(),
            origins: Vec::new(),
        }
    }

    /// The ActiveGate container's name.
    pub(super) fn ag_name(&self) -> &'a str {
        &self.ag.name.value
    }

    /// `containers[NAME].FIELD`: a field of the ActiveGate container in the manifest.
    pub(super) fn src(&self, field: &str) -> String {
        format!("{}.{field}", self.cpath)
    }

    /// `containerDefinitions[NAME].FIELD`: a field of its container definition.
    pub(super) fn dst(&self, field: &str) -> String {
        format!("{}.{field}", self.tpath)
    }

    /// The place of a manifest value.
    pub(super) fn at<T>(&self, spanned: &Spanned<T>) -> Where {
        Where::of(&self.m.source, spanned)
    }

    /// Adds a report line. `source` is relative to the pod spec unless it names
    /// the config, the workload's `spec` or `metadata`, or is empty (the workload).
    pub(super) fn note(
        &mut self,
        action: Action,
        source: &str,
        target: Option<&str>,
        detail: impl Into<String>,
    ) {
        let source = if source.is_empty() {
            self.m.workload.id()
        } else if source.starts_with("(config)") {
            source.to_owned()
        } else if source.starts_with("spec") || source.starts_with("metadata") {
            format!("{} {source}", self.m.workload.id())
        } else {
            format!("{} {}.{source}", self.m.workload.id(), self.pod_path)
        };
        self.report.push(action, source, target, detail);
    }

    /// Records where a document field came from.
    pub(super) fn origin(&mut self, target: &str, at: &Where, source: &str) {
        self.origins
            .push((target.to_owned(), at.clone(), source.to_owned()));
    }

    /// Every value copied from the manifest or the config into a document passes
    /// here: it must not look like a secret, and must keep the field's own limit.
    pub(super) fn gate(
        &mut self,
        at: &Where,
        source: &str,
        target: &str,
        value: &str,
        limit: impl FnOnce(&str, &str) -> Result<(), Violation>,
    ) -> Result<(), TranslateError> {
        self.origin(target, at, source);
        if let Some(f) = secret::find(value) {
            return Err(TranslateError::LiteralSecret {
                at: at.clone(),
                what: short_path(source),
                shape: format!("it looks like {}", secret::describe(value, &f)),
            });
        }
        limit(target, value).map_err(|mut violation| {
            violation.field = short_path(&violation.field);
            TranslateError::Limit {
                at: at.clone(),
                source_field: short_path(source),
                violation: Box::new(violation),
            }
        })
    }

    /// A limit found on a document, pointed at the input it came from: the
    /// longest recorded field it falls under, else the workload.
    pub(super) fn refusal(&self, violation: Violation) -> TranslateError {
        let best = self
            .origins
            .iter()
            .filter(|(t, ..)| {
                violation.field == *t
                    || violation.field.starts_with(&format!("{t}."))
                    || violation.field.starts_with(&format!("{t}["))
            })
            .max_by_key(|(t, ..)| t.len());
        let (at, source_field) = match best {
            Some((_, at, src)) => (at.clone(), short_path(src)),
            None => (
                self.m.workload.at.clone(),
                short_path(&self.m.workload.id()),
            ),
        };
        let mut violation = violation;
        violation.field = short_path(&violation.field);
        TranslateError::Limit {
            at,
            source_field,
            violation: Box::new(violation),
        }
    }
}
