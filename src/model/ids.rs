//! Typed identifiers: the ECS ARNs the daemon reads back and the image references it
//! rolls out, parsed once where they enter the program (the ECS layer's conversions, the
//! translator's image) so that no other module slices them by hand.
//!
//! Each type keeps the text it was parsed from, so `Display` (and `as_str`) give the
//! identifier back exactly as ECS or the manifest wrote it.

use std::fmt;
use std::str::FromStr;

use super::secret;

/// Why an identifier did not parse: what was expected and what was found. `found` is
/// shown bounded (64 characters, control characters escaped, a token-like value by its
/// shape only), so a hostile or huge input never ends up whole in a log line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("expected {expected}, found an empty value")]
    Empty { expected: &'static str },
    #[error("expected {expected}, found {found}: {problem}")]
    Malformed {
        expected: &'static str,
        found: String,
        problem: &'static str,
    },
}

impl IdError {
    fn malformed(expected: &'static str, found: &str, problem: &'static str) -> IdError {
        IdError::Malformed {
            expected,
            found: secret::shown(found),
            problem,
        }
    }
}

const TASK_DEFINITION_ARN: &str = "a task definition ARN `arn:<partition>:ecs:<region>:<account>:task-definition/<family>:<revision>`";
const SERVICE_ARN: &str =
    "a service ARN `arn:<partition>:ecs:<region>:<account>:service/[<cluster>/]<name>`";
const TASK_SET_ARN: &str =
    "a task set ARN `arn:<partition>:ecs:<region>:<account>:task-set/<cluster>/<service>/<id>`";
const TASK_ARN: &str = "a task ARN `arn:<partition>:ecs:<region>:<account>:task/[<cluster>/]<id>`";
const IMAGE_REF: &str = "an image reference `registry/path/name[:tag][@algorithm:digest]`";

/// ECS's limit on a task definition family (and on service and cluster names).
const NAME_MAX: usize = 255;

/// `arn:<partition>:ecs:<region>:<account>:<resource>` → the resource after `<kind>/`.
fn ecs_resource<'a>(s: &'a str, kind: &str, expected: &'static str) -> Result<&'a str, IdError> {
    if s.is_empty() {
        return Err(IdError::Empty { expected });
    }
    let mut parts = s.splitn(6, ':');
    let (Some("arn"), Some(partition), Some("ecs"), Some(region), Some(account), Some(resource)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(IdError::malformed(
            expected,
            s,
            "not an ECS ARN (`arn:<partition>:ecs:…`)",
        ));
    };
    if partition.is_empty() || region.is_empty() || account.is_empty() {
        return Err(IdError::malformed(
            expected,
            s,
            "the partition, region or account is empty",
        ));
    }
    resource
        .strip_prefix(kind)
        .and_then(|r| r.strip_prefix('/'))
        .ok_or_else(|| IdError::malformed(expected, s, "the resource is of another kind"))
}

/// ECS names: 1 to 255 letters, digits, hyphens and underscores.
fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= NAME_MAX
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `arn:…:task-definition/<family>:<revision>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskDefinitionArn {
    arn: String,
    family: String,
    revision: u32,
}

impl TaskDefinitionArn {
    pub fn parse(s: &str) -> Result<TaskDefinitionArn, IdError> {
        let e = TASK_DEFINITION_ARN;
        let resource = ecs_resource(s, "task-definition", e)?;
        let (family, revision) = resource
            .rsplit_once(':')
            .ok_or_else(|| IdError::malformed(e, s, "no `:<revision>` after the family"))?;
        if !is_name(family) {
            return Err(IdError::malformed(
                e,
                s,
                "the family is not 1 to 255 letters, digits, `-` or `_`",
            ));
        }
        let revision = revision
            .parse::<u32>()
            .ok()
            .filter(|r| *r > 0 && !revision.starts_with('+'))
            .ok_or_else(|| IdError::malformed(e, s, "the revision is not a positive number"))?;
        Ok(TaskDefinitionArn {
            arn: s.to_owned(),
            family: family.to_owned(),
            revision,
        })
    }

    pub fn family(&self) -> &str {
        &self.family
    }

    pub fn revision(&self) -> u32 {
        self.revision
    }

    /// `family:revision`, the short form people read and ECS accepts as a reference.
    pub fn family_revision(&self) -> String {
        format!("{}:{}", self.family, self.revision)
    }

    /// For display: the `family:revision` of a task definition ARN, anything else as it is
    /// (a reference given as `family:revision` already, or text ECS never sends).
    pub fn shorten(reference: &str) -> String {
        TaskDefinitionArn::parse(reference)
            .map_or_else(|_| reference.to_owned(), |a| a.family_revision())
    }

    pub fn as_str(&self) -> &str {
        &self.arn
    }
}

/// `arn:…:service/<cluster>/<name>` (or the old `service/<name>`, without the cluster).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceArn {
    arn: String,
    cluster: Option<String>,
    name: String,
}

impl ServiceArn {
    pub fn parse(s: &str) -> Result<ServiceArn, IdError> {
        let e = SERVICE_ARN;
        let resource = ecs_resource(s, "service", e)?;
        let (cluster, name) = match resource.split_once('/') {
            Some((c, n)) => (Some(c), n),
            None => (None, resource),
        };
        if !is_name(name) || cluster.is_some_and(|c| !is_name(c)) {
            return Err(IdError::malformed(
                e,
                s,
                "the cluster or service name is not 1 to 255 letters, digits, `-` or `_`",
            ));
        }
        Ok(ServiceArn {
            arn: s.to_owned(),
            cluster: cluster.map(str::to_owned),
            name: name.to_owned(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `None` for an ARN of the old format, which does not name the cluster.
    pub fn cluster(&self) -> Option<&str> {
        self.cluster.as_deref()
    }

    pub fn as_str(&self) -> &str {
        &self.arn
    }
}

/// `arn:…:task-set/<cluster>/<service>/<id>`; the id is `ecs-svc/…` (it holds a `/`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskSetArn {
    arn: String,
    cluster: String,
    service: String,
    id: String,
}

impl TaskSetArn {
    pub fn parse(s: &str) -> Result<TaskSetArn, IdError> {
        let e = TASK_SET_ARN;
        let resource = ecs_resource(s, "task-set", e)?;
        let mut parts = resource.splitn(3, '/');
        let (Some(cluster), Some(service), Some(id)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(IdError::malformed(
                e,
                s,
                "not `<cluster>/<service>/<id>` after `task-set/`",
            ));
        };
        if !is_name(cluster) || !is_name(service) {
            return Err(IdError::malformed(
                e,
                s,
                "the cluster or service name is not 1 to 255 letters, digits, `-` or `_`",
            ));
        }
        if id.is_empty() || id.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(IdError::malformed(
                e,
                s,
                "the task set id is empty or has blanks",
            ));
        }
        Ok(TaskSetArn {
            arn: s.to_owned(),
            cluster: cluster.to_owned(),
            service: service.to_owned(),
            id: id.to_owned(),
        })
    }

    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    pub fn service(&self) -> &str {
        &self.service
    }

    /// `ecs-svc/…`: what the set's tasks carry as `startedBy`.
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn as_str(&self) -> &str {
        &self.arn
    }
}

/// `arn:…:task/<cluster>/<id>` (or the old `task/<id>`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskArn {
    arn: String,
    cluster: Option<String>,
    id: String,
}

impl TaskArn {
    pub fn parse(s: &str) -> Result<TaskArn, IdError> {
        let e = TASK_ARN;
        let resource = ecs_resource(s, "task", e)?;
        let (cluster, id) = match resource.split_once('/') {
            Some((c, i)) => (Some(c), i),
            None => (None, resource),
        };
        if cluster.is_some_and(|c| !is_name(c)) || !is_name(id) {
            return Err(IdError::malformed(
                e,
                s,
                "the cluster or task id is not 1 to 255 letters, digits, `-` or `_`",
            ));
        }
        Ok(TaskArn {
            arn: s.to_owned(),
            cluster: cluster.map(str::to_owned),
            id: id.to_owned(),
        })
    }

    /// The task's id, the last part of its ARN.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// `None` for an ARN of the old format, which does not name the cluster.
    pub fn cluster(&self) -> Option<&str> {
        self.cluster.as_deref()
    }

    pub fn as_str(&self) -> &str {
        &self.arn
    }
}

/// `registry/path/name[:tag][@algorithm:digest]`. A `:` in the registry host starts its
/// port, not a tag: only the last path segment can carry the tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageRef {
    reference: String,
    repository: String,
    tag: Option<String>,
    digest: Option<String>,
}

/// Docker's limit on a tag.
const TAG_MAX: usize = 128;

impl ImageRef {
    pub fn parse(s: &str) -> Result<ImageRef, IdError> {
        let e = IMAGE_REF;
        if s.is_empty() {
            return Err(IdError::Empty { expected: e });
        }
        if !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(IdError::malformed(
                e,
                s,
                "only printable ASCII without blanks is allowed",
            ));
        }
        let (named, digest) = match s.split_once('@') {
            Some((n, d)) => (n, Some(parse_digest(s, d)?)),
            None => (s, None),
        };
        let name_start = named.rfind('/').map_or(0, |i| i + 1);
        let (repository, tag) = match named[name_start..].split_once(':') {
            Some((_, t)) => (&named[..named.len() - t.len() - 1], Some(t)),
            None => (named, None),
        };
        if repository.is_empty() || repository.split('/').any(str::is_empty) {
            return Err(IdError::malformed(
                e,
                s,
                "the repository is empty or has an empty path segment",
            ));
        }
        if let Some(t) = tag {
            let first_ok = t
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_');
            let rest_ok = t
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
            if !first_ok || !rest_ok || t.len() > TAG_MAX {
                return Err(IdError::malformed(
                    e,
                    s,
                    "the tag is not 1 to 128 letters, digits, `_`, `.` or `-` (not starting with `.` or `-`)",
                ));
            }
        }
        Ok(ImageRef {
            reference: s.to_owned(),
            repository: repository.to_owned(),
            tag: tag.map(str::to_owned),
            digest: digest.map(str::to_owned),
        })
    }

    /// Everything before the tag and digest: `registry/path/name`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// `sha256:…`.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// A tag or a digest pins what runs; a bare repository means `latest`.
    pub fn is_pinned(&self) -> bool {
        self.tag.is_some() || self.digest.is_some()
    }

    pub fn as_str(&self) -> &str {
        &self.reference
    }

    /// Whether `text` asks for a tag or a digest at all, read as leniently as the translator
    /// always has (an `@`, or a `:` in the last path segment), so that a malformed pin such as
    /// `repo/ag@latest` is reported for what ECS makes of it rather than as "no tag". A port
    /// in the registry host is no tag.
    pub fn names_tag_or_digest(text: &str) -> bool {
        if text.contains('@') {
            return true;
        }
        let name_start = text.rfind('/').map_or(0, |i| i + 1);
        text[name_start..].contains(':')
    }
}

/// `algorithm:encoded`, as the OCI image spec writes a digest.
fn parse_digest<'a>(s: &str, d: &'a str) -> Result<&'a str, IdError> {
    let ok = d.split_once(':').is_some_and(|(alg, enc)| {
        !alg.is_empty()
            && !enc.is_empty()
            && alg
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+._-".contains(&b))
            && enc
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"=_-".contains(&b))
    });
    if ok {
        Ok(d)
    } else {
        Err(IdError::malformed(
            IMAGE_REF,
            s,
            "the digest is not `algorithm:encoded`",
        ))
    }
}

macro_rules! text_id {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $t {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }

        impl AsRef<str> for $t {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }
    )*};
}

text_id!(TaskDefinitionArn, ServiceArn, TaskSetArn, TaskArn, ImageRef);

#[cfg(test)]
mod tests;
