//! Tags on any ECS resource.

use std::collections::BTreeMap;

use aws_sdk_ecs::types as sdk;

use super::error::classify;
use super::{Aws, EcsError};

pub(super) fn tags_map(tags: &[sdk::Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| Some((t.key()?.to_owned(), t.value().unwrap_or("").to_owned())))
        .collect()
}

impl Aws {
    pub async fn tag(&self, arn: &str, tags: &[(String, String)]) -> Result<(), EcsError> {
        const OP: &str = "TagResource";
        if tags.is_empty() {
            return Ok(());
        }
        self.call(OP, || async {
            let mut b = self.ecs.tag_resource().resource_arn(arn);
            for (k, v) in tags {
                b = b.tags(sdk::Tag::builder().key(k).value(v).build());
            }
            b.send().await.map_err(|e| classify(OP, e))
        })
        .await
        .map(|_| ())
    }

    pub async fn untag(&self, arn: &str, keys: &[String]) -> Result<(), EcsError> {
        const OP: &str = "UntagResource";
        if keys.is_empty() {
            return Ok(());
        }
        self.call(OP, || async {
            self.ecs
                .untag_resource()
                .resource_arn(arn)
                .set_tag_keys(Some(keys.to_vec()))
                .send()
                .await
                .map_err(|e| classify(OP, e))
        })
        .await
        .map(|_| ())
    }
}
