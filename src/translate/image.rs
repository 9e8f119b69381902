//! The image: the config's choice, else the manifest's; and the credentials
//! to pull it from a private registry.

use super::TranslateError;
use super::context::Ctx;
use super::manifest::Where;
use super::report::Action;
use crate::model::limits::{self, Violation};
use crate::model::secret;
use crate::model::task_definition::RepositoryCredentials;

/// Placeholder images (`<YOUR_ENVIRONMENT_URL>/linux/activegate`): kept only in a
/// translation without a config, which reports them as needing a setting.
pub(super) fn is_placeholder(image: &str) -> bool {
    image.contains('<') || image.contains('>')
}

fn has_tag_or_digest(image: &str) -> bool {
    crate::model::ids::ImageRef::names_tag_or_digest(image)
}

/// The image the container runs: the config's (the rollout engine's choice) wins.
pub(super) fn map_image(cx: &mut Ctx<'_>) -> Result<String, TranslateError> {
    let ag = cx.ag;
    let image_target = cx.dst("image");
    let s = cx.s;
    match (&s.image, &ag.image) {
        (Some(img), from) => {
            cx.gate(
                &s.at("image"),
                "(config) image",
                &image_target,
                img,
                limits::image,
            )?;
            let was = from
                .as_ref()
                .map_or_else(|| "(none)".to_owned(), |f| secret::shown(&f.value));
            cx.note(
                Action::Adjusted,
                &cx.src("image"),
                Some(&image_target),
                format!("`{img}` from the config (manifest had {was})"),
            );
            Ok(img.clone())
        }
        (None, Some(spanned)) => {
            let img = &spanned.value;
            manifest_image(cx, img, &cx.at(spanned), &image_target)?;
            Ok(img.clone())
        }
        (None, None) => Err(TranslateError::Unsupported {
            at: cx.at(&ag.name),
            message: format!(
                "container {} has no image and the config sets none",
                secret::shown(cx.ag_name())
            ),
        }),
    }
}

/// The manifest's image, when the config sets none: a placeholder is refused
/// for a configured target and reported in a draft; an unpinned one is warned of.
fn manifest_image(
    cx: &mut Ctx<'_>,
    img: &str,
    at: &Where,
    image_target: &str,
) -> Result<(), TranslateError> {
    let source = cx.src("image");
    if is_placeholder(img) {
        if cx.s.target.is_some() {
            return Err(TranslateError::Limit {
                at: at.clone(),
                source_field: source,
                violation: Box::new(Violation {
                    field: image_target.to_owned(),
                    found: format!("the placeholder {}", secret::shown(img)),
                    allowed: "a real image: set `image` in the config".into(),
                    source: limits::source::CONTAINER_DEFINITION,
                }),
            });
        }
        // A draft without a config: the report asks for the image.
        cx.gate(at, &source, image_target, img, |_, _| Ok(()))?;
        let shown = secret::shown(img);
        cx.note(
            Action::NeedsSetting,
            &source,
            Some(image_target),
            format!("{shown} is a placeholder; set `image` in the config"),
        );
    } else {
        cx.gate(at, &source, image_target, img, limits::image)?;
        if !has_tag_or_digest(img) {
            cx.note(Action::Warning, &source, Some(image_target),
                format!("`{img}` names no tag or digest; public ActiveGate images carry version tags only, so pin one"));
        } else {
            cx.note(
                Action::Mapped,
                &source,
                Some(image_target),
                format!("`{img}`"),
            );
        }
    }
    Ok(())
}

/// imagePullSecrets → repositoryCredentials, from the config's Secrets Manager ARN.
pub(super) fn map_registry_credentials(cx: &mut Ctx<'_>) -> Option<RepositoryCredentials> {
    let pod = &cx.m.workload.pod;
    let target = cx.dst("repositoryCredentials");
    match (
        &cx.s.registry_credentials,
        pod.image_pull_secrets.is_empty(),
    ) {
        (Some(arn), no_secret) => {
            let src = if no_secret {
                "(config)".to_owned()
            } else {
                "imagePullSecrets".to_owned()
            };
            let action = if no_secret {
                Action::Added
            } else {
                Action::Mapped
            };
            cx.note(
                action,
                &src,
                Some(&target),
                format!("credentialsParameter {arn}"),
            );
            Some(RepositoryCredentials {
                credentials_parameter: arn.to_string(),
            })
        }
        (None, false) => {
            let names: Vec<&str> = pod
                .image_pull_secrets
                .iter()
                .map(|s| s.name.as_str())
                .collect();
            cx.note(Action::NeedsSetting, "imagePullSecrets", Some(&target),
                format!("pull secret `{}`: set `secrets.registry_credentials` to a Secrets Manager ARN holding {{\"username\",\"password\"}}", names.join("`, `")));
            None
        }
        (None, true) => None,
    }
}
