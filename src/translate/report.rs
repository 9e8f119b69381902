//! The translation report: one entry per Kubernetes field, saying what became
//! of it. Values of secrets never reach it: entries name fields and ARNs only.

use std::fmt;

use serde::Serialize;

use crate::model::secret;

/// What happened to a Kubernetes field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Carried over unchanged in meaning.
    Mapped,
    /// Carried over with a change, which the detail explains.
    Adjusted,
    /// Not carried over, with the reason.
    Dropped,
    /// Added for ECS although the manifest does not ask for it.
    Added,
    /// Cannot be completed without a value from the config file.
    NeedsSetting,
    /// Carried over, but worth a look.
    Warning,
}

impl Action {
    pub fn label(self) -> &'static str {
        match self {
            Self::Mapped => "mapped",
            Self::Adjusted => "adjusted",
            Self::Dropped => "dropped",
            Self::Added => "added",
            Self::NeedsSetting => "needs-setting",
            Self::Warning => "warning",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub action: Action,
    /// The Kubernetes field, e.g. `StatefulSet/ag spec.template.spec.containers[activegate].image`.
    pub source: String,
    /// The ECS field it became, if any, e.g. `containerDefinitions[activegate].image`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    pub detail: String,
}

/// Every entry, in the order the translation produced them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    pub entries: Vec<Entry>,
}

impl Report {
    pub fn push(
        &mut self,
        action: Action,
        source: impl Into<String>,
        target: Option<&str>,
        detail: impl Into<String>,
    ) {
        // Entries repeat values from the manifest and the config: nothing that looks
        // like a secret is kept (the one decision is `model::secret`).
        let scrub = |s: String| match secret::scrub(&s) {
            std::borrow::Cow::Borrowed(_) => s,
            std::borrow::Cow::Owned(o) => o,
        };
        self.entries.push(Entry {
            action,
            source: scrub(source.into()),
            target: target.map(|t| scrub(t.to_owned())),
            detail: scrub(detail.into()),
        });
    }

    pub fn count(&self, action: Action) -> usize {
        self.entries.iter().filter(|e| e.action == action).count()
    }

    /// Entries with this action.
    pub fn with(&self, action: Action) -> impl Iterator<Item = &Entry> {
        self.entries.iter().filter(move |e| e.action == action)
    }

    /// The report as one JSON document: entries plus a count per action.
    pub fn to_json(&self) -> String {
        #[derive(Serialize)]
        struct Summary {
            mapped: usize,
            adjusted: usize,
            dropped: usize,
            added: usize,
            #[serde(rename = "needs-setting")]
            needs_setting: usize,
            warning: usize,
        }
        #[derive(Serialize)]
        struct Doc<'a> {
            summary: Summary,
            entries: &'a [Entry],
        }
        let doc = Doc {
            summary: Summary {
                mapped: self.count(Action::Mapped),
                adjusted: self.count(Action::Adjusted),
                dropped: self.count(Action::Dropped),
                added: self.count(Action::Added),
                needs_setting: self.count(Action::NeedsSetting),
                warning: self.count(Action::Warning),
            },
            entries: &self.entries,
        };
        let mut out = serde_json::to_string_pretty(&doc).expect("report serialises");
        out.push('\n');
        out
    }
}

impl fmt::Display for Report {
    /// One line per entry: `action  source -> target: detail`, then a summary.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for e in &self.entries {
            write!(f, "{:<13} {}", e.action.label(), e.source)?;
            if let Some(t) = &e.target {
                write!(f, " -> {t}")?;
            }
            if !e.detail.is_empty() {
                write!(f, ": {}", e.detail)?;
            }
            writeln!(f)?;
        }
        writeln!(
            f,
            "summary: {} mapped, {} adjusted, {} dropped, {} added, {} needs-setting, {} warning",
            self.count(Action::Mapped),
            self.count(Action::Adjusted),
            self.count(Action::Dropped),
            self.count(Action::Added),
            self.count(Action::NeedsSetting),
            self.count(Action::Warning),
        )
    }
}
