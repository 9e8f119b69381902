//! The containers' output → the awslogs driver, from the config.

use std::collections::BTreeMap;

use super::context::Ctx;
use super::report::Action;
use crate::model::task_definition::LogConfiguration;

/// The awslogs configuration every container gets; without one in the config
/// the output is lost, which the report says.
pub(super) fn map_logs(cx: &mut Ctx<'_>) -> Option<LogConfiguration> {
    let target = cx.dst("logConfiguration");
    match &cx.s.logs {
        Some(logs) => {
            let mut options = BTreeMap::new();
            options.insert("awslogs-group".to_owned(), logs.group.to_string());
            options.insert("awslogs-region".to_owned(), logs.region.to_string());
            options.insert(
                "awslogs-stream-prefix".to_owned(),
                logs.stream_prefix.clone(),
            );
            cx.note(
                Action::Added,
                "(config)",
                Some(&target),
                format!(
                    "awslogs to group {} in {}, stream prefix `{}`",
                    logs.group, logs.region, logs.stream_prefix
                ),
            );
            Some(LogConfiguration {
                log_driver: "awslogs".into(),
                options,
            })
        }
        None => {
            cx.note(
                Action::NeedsSetting,
                "(config)",
                Some(&target),
                "set `logs.group` and `region`: without them the containers' output is lost",
            );
            None
        }
    }
}
