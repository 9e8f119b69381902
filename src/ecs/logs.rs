//! CloudWatch Logs: the log group the task definition names, and a stream's last lines.

use super::error::classify;
use super::{Aws, EcsError};

impl Aws {
    /// Creates the log group if it is missing and sets its retention.
    pub async fn ensure_log_group(&self, group: &str, retention_days: u32) -> Result<(), EcsError> {
        const DESCRIBE: &str = "DescribeLogGroups";
        const CREATE: &str = "CreateLogGroup";
        const RETENTION: &str = "PutRetentionPolicy";
        let out = self
            .call(DESCRIBE, || async {
                self.logs
                    .describe_log_groups()
                    .log_group_name_prefix(group)
                    .send()
                    .await
                    .map_err(|e| classify(DESCRIBE, e))
            })
            .await?;
        let existing = out
            .log_groups()
            .iter()
            .find(|g| g.log_group_name() == Some(group));
        if existing.is_none() {
            let created = self
                .call(CREATE, || async {
                    self.logs
                        .create_log_group()
                        .log_group_name(group)
                        .send()
                        .await
                        .map_err(|e| classify(CREATE, e))
                })
                .await;
            match created {
                Err(e) if e.code() == Some("ResourceAlreadyExistsException") => {}
                other => other.map(|_| ())?,
            }
        }
        if existing.and_then(|g| g.retention_in_days()) != Some(retention_days as i32) {
            self.call(RETENTION, || async {
                self.logs
                    .put_retention_policy()
                    .log_group_name(group)
                    .retention_in_days(retention_days as i32)
                    .send()
                    .await
                    .map_err(|e| classify(RETENTION, e))
            })
            .await?;
        }
        Ok(())
    }

    /// The last `limit` lines of a log stream (empty when it does not exist).
    pub async fn last_log_lines(
        &self,
        group: &str,
        stream: &str,
        limit: u32,
    ) -> Result<Vec<String>, EcsError> {
        const OP: &str = "GetLogEvents";
        let out = self
            .call(OP, || async {
                self.logs
                    .get_log_events()
                    .log_group_name(group)
                    .log_stream_name(stream)
                    .limit(limit as i32)
                    .start_from_head(false)
                    .send()
                    .await
                    .map_err(|e| classify(OP, e))
            })
            .await;
        match out {
            Ok(o) => Ok(o
                .events()
                .iter()
                .filter_map(|e| e.message().map(str::to_owned))
                .collect()),
            Err(e) if e.code() == Some("ResourceNotFoundException") => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }
}
