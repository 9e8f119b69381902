//! The lease table (DynamoDB): who may write a target's ECS service when several writers
//! share a fleet — daemon replicas, and a person's `rollout` or `rollback`.
//!
//! One item per lease, `key` = `lease/<region>/<cluster>/<service>`: `holder`, `expires_at`
//! (milliseconds since the epoch, on the holder's clock), `fence` (a counter raised by every
//! new holder, never lowered: a release keeps it) and `ttl` (seconds since the epoch, a day
//! after expiry, for DynamoDB's TTL to remove what nobody renews). Replicas announce
//! themselves with `replica/<id>` items of the same shape. Every write is conditional, the
//! pattern of Amazon's DynamoDB lock client and Kubernetes' leader-election leases: taking
//! a lease succeeds only when nobody holds it or its holder let it expire; renewing and
//! releasing succeed only for the holder with the fence it took.
//!
//! Expiry compares clocks of different hosts: ECS tasks keep time with the Amazon Time
//! Sync Service (well under a second apart); the holder stops writing a margin before its
//! lease ends (`daemon::lease`), so a skew smaller than that margin cannot make two writers.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;

use super::error::classify;
use super::{Aws, EcsError};

/// The longest lease or heartbeat anyone may ask for: a lease is a promise to renew.
pub const MAX_DURATION: Duration = Duration::from_secs(3600);
/// Items read per listing at most (pages of DynamoDB's 1 MiB): a table is one item per
/// target and replica; more than this is not a table of ours.
const MAX_ITEMS: usize = 100_000;
const MAX_PAGES: usize = 200;
/// Holder names are ours (`replica id`, `cli:<host>:<pid>`); a longer one is refused.
const MAX_HOLDER: usize = 256;
/// DynamoDB's TTL removes an item no one renewed a day after it expired.
const TTL_AFTER: Duration = Duration::from_secs(86_400);

/// One lease (or a replica's heartbeat) as the table holds it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LeaseRecord {
    pub key: String,
    pub holder: String,
    /// Milliseconds since the epoch, on the holder's clock; 0 once released.
    pub expires_at_ms: i64,
    pub fence: u64,
}

impl LeaseRecord {
    pub fn is_live(&self, now_ms: i64) -> bool {
        self.expires_at_ms > now_ms
    }
}

/// The answer to "may I take this lease?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Taken {
    /// Yours, with the fence your writes carry.
    Acquired { fence: u64 },
    /// Someone else holds it and has not let it expire.
    Held(LeaseRecord),
}

/// The lease table of a fleet, through the `Aws` of its region (counted and retried in
/// `Aws::call` like every other call).
#[derive(Clone)]
pub struct LeaseTable {
    aws: Aws,
    table: String,
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.min(MAX_DURATION).as_millis()).unwrap_or(i64::MAX)
}

/// When a lease taken at `now_ms` for `duration` ends (ms), and when DynamoDB's TTL may
/// remove its item (seconds: a day later).
fn expiry(now_ms: i64, duration: Duration) -> (i64, i64) {
    let expires = now_ms.saturating_add(ms(duration));
    (expires, expires.saturating_add(ms(TTL_AFTER)) / 1000)
}

/// The item's fields, or `None` for an item that is not one of ours (left alone).
fn record(item: &HashMap<String, AttributeValue>) -> Option<LeaseRecord> {
    let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
    let number = |k: &str| item.get(k).and_then(|v| v.as_n().ok()).cloned();
    Some(LeaseRecord {
        key: text("key")?,
        holder: text("holder")?,
        expires_at_ms: number("expires_at")?.parse().ok()?,
        fence: number("fence").and_then(|f| f.parse().ok()).unwrap_or(0),
    })
}

fn conditional_failed(e: &EcsError) -> bool {
    e.code() == Some("ConditionalCheckFailedException")
}

impl LeaseTable {
    pub fn new(aws: Aws, table: impl Into<String>) -> Self {
        Self {
            aws,
            table: table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// The key of a target's lease: the service it writes, not the config's name for it,
    /// so that two configs naming one service differently still exclude each other.
    pub fn key_of(region: &str, cluster: &str, service: &str) -> String {
        format!("lease/{region}/{cluster}/{service}")
    }

    fn check_holder(holder: &str) -> Result<(), EcsError> {
        if holder.is_empty() || holder.len() > MAX_HOLDER {
            return Err(EcsError::Request {
                op: "UpdateItem",
                detail: format!("a lease holder's name has 1 to {MAX_HOLDER} bytes"),
            });
        }
        Ok(())
    }

    /// Takes `key` for `holder` until `now + duration`, if nobody holds it or its holder
    /// let it expire (or `holder` already holds it: then this renews and keeps the fence).
    pub async fn acquire(
        &self,
        key: &str,
        holder: &str,
        duration: Duration,
        now_ms: i64,
    ) -> Result<Taken, EcsError> {
        Self::check_holder(holder)?;
        const OP: &str = "UpdateItem";
        let (expires, ttl) = expiry(now_ms, duration);
        let out = self
            .aws
            .call(OP, || async {
                self.aws
                    .dynamodb
                    .update_item()
                    .table_name(&self.table)
                    .key("key", s(key))
                    // A new holder raises the fence; the holder itself keeps it.
                    .update_expression(
                        "SET holder = :me, expires_at = :exp, #ttl = :ttl, \
                         fence = if_not_exists(fence, :zero) + :step",
                    )
                    .condition_expression(
                        "attribute_not_exists(#key) OR expires_at <= :now OR holder = :me",
                    )
                    .expression_attribute_names("#key", "key")
                    .expression_attribute_names("#ttl", "ttl")
                    .expression_attribute_values(":me", s(holder))
                    .expression_attribute_values(":exp", n(expires))
                    .expression_attribute_values(":ttl", n(ttl))
                    .expression_attribute_values(":now", n(now_ms))
                    .expression_attribute_values(":zero", n(0))
                    .expression_attribute_values(":step", n(1))
                    .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
                    .send()
                    .await
                    .map_err(|e| classify(OP, e))
            })
            .await;
        match out {
            Ok(out) => {
                let rec = out
                    .attributes()
                    .and_then(record)
                    .ok_or(EcsError::Incomplete {
                        op: OP,
                        what: "lease attributes",
                    })?;
                Ok(Taken::Acquired { fence: rec.fence })
            }
            // Held by someone else (or, rarely, released between the two calls: then the
            // record shows expiry 0 and the caller tries again on its next round).
            Err(e) if conditional_failed(&e) => match self.get(key).await? {
                Some(rec) => Ok(Taken::Held(rec)),
                None => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    /// Extends `holder`'s lease on `key` taken with `fence`; `false` when it is no longer
    /// theirs (taken over after it expired, or released): the caller stops writing.
    pub async fn renew(
        &self,
        key: &str,
        holder: &str,
        fence: u64,
        duration: Duration,
        now_ms: i64,
    ) -> Result<bool, EcsError> {
        const OP: &str = "UpdateItem";
        let (expires, ttl) = expiry(now_ms, duration);
        let out = self
            .aws
            .call(OP, || async {
                self.aws
                    .dynamodb
                    .update_item()
                    .table_name(&self.table)
                    .key("key", s(key))
                    .update_expression("SET expires_at = :exp, #ttl = :ttl")
                    .condition_expression("holder = :me AND fence = :fence")
                    .expression_attribute_names("#ttl", "ttl")
                    .expression_attribute_values(":me", s(holder))
                    .expression_attribute_values(":fence", n(fence))
                    .expression_attribute_values(":exp", n(expires))
                    .expression_attribute_values(":ttl", n(ttl))
                    .send()
                    .await
                    .map_err(|e| classify(OP, e))
            })
            .await;
        match out {
            Ok(_) => Ok(true),
            Err(e) if conditional_failed(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Gives the lease up at once (expiry 0), keeping its fence so that the next holder's
    /// is higher. Nothing happens when it is no longer `holder`'s.
    pub async fn release(&self, key: &str, holder: &str, fence: u64) -> Result<(), EcsError> {
        const OP: &str = "UpdateItem";
        let out = self
            .aws
            .call(OP, || async {
                self.aws
                    .dynamodb
                    .update_item()
                    .table_name(&self.table)
                    .key("key", s(key))
                    .update_expression("SET expires_at = :zero")
                    .condition_expression("holder = :me AND fence = :fence")
                    .expression_attribute_values(":me", s(holder))
                    .expression_attribute_values(":fence", n(fence))
                    .expression_attribute_values(":zero", n(0))
                    .send()
                    .await
                    .map_err(|e| classify(OP, e))
            })
            .await;
        match out {
            Ok(_) => Ok(()),
            Err(e) if conditional_failed(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The lease on `key`, read consistently.
    pub async fn get(&self, key: &str) -> Result<Option<LeaseRecord>, EcsError> {
        const OP: &str = "GetItem";
        let out = self
            .aws
            .call(OP, || async {
                self.aws
                    .dynamodb
                    .get_item()
                    .table_name(&self.table)
                    .key("key", s(key))
                    .consistent_read(true)
                    .send()
                    .await
                    .map_err(|e| classify(OP, e))
            })
            .await?;
        Ok(out.item().and_then(record))
    }

    /// Announces replica `id` alive until `now + duration`.
    pub async fn heartbeat(
        &self,
        id: &str,
        duration: Duration,
        now_ms: i64,
    ) -> Result<(), EcsError> {
        Self::check_holder(id)?;
        const OP: &str = "PutItem";
        let (expires, ttl) = expiry(now_ms, duration);
        let key = format!("replica/{id}");
        self.aws
            .call(OP, || async {
                self.aws
                    .dynamodb
                    .put_item()
                    .table_name(&self.table)
                    .item("key", s(&key))
                    .item("holder", s(id))
                    .item("expires_at", n(expires))
                    .item("fence", n(0))
                    .item("ttl", n(ttl))
                    .send()
                    .await
                    .map_err(|e| classify(OP, e))
            })
            .await?;
        Ok(())
    }

    /// Every item of the table whose key starts with `prefix` (`lease/`, `replica/`),
    /// bounded in items and pages.
    async fn list(&self, prefix: &str) -> Result<Vec<LeaseRecord>, EcsError> {
        const OP: &str = "Scan";
        let mut out = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        for _ in 0..MAX_PAGES {
            let page = self
                .aws
                .call(OP, || async {
                    self.aws
                        .dynamodb
                        .scan()
                        .table_name(&self.table)
                        .filter_expression("begins_with(#key, :prefix)")
                        .expression_attribute_names("#key", "key")
                        .expression_attribute_values(":prefix", s(prefix))
                        .consistent_read(true)
                        .set_exclusive_start_key(start.clone())
                        .send()
                        .await
                        .map_err(|e| classify(OP, e))
                })
                .await?;
            out.extend(page.items().iter().filter_map(record));
            if out.len() > MAX_ITEMS {
                return Err(EcsError::Incomplete {
                    op: OP,
                    what: "an end within 100,000 items",
                });
            }
            match page.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => return Ok(out),
            }
        }
        Err(EcsError::Incomplete {
            op: OP,
            what: "an end within 200 pages",
        })
    }

    /// The replicas whose heartbeat has not expired, by id.
    pub async fn live_replicas(&self, now_ms: i64) -> Result<Vec<String>, EcsError> {
        let mut ids: Vec<String> = self
            .list("replica/")
            .await?
            .into_iter()
            .filter(|r| r.is_live(now_ms))
            .map(|r| r.holder)
            .collect();
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    /// Every lease in the table (for `/status` and tests).
    pub async fn leases(&self) -> Result<Vec<LeaseRecord>, EcsError> {
        let mut all = self.list("lease/").await?;
        all.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(all)
    }

    /// Creates the table as the deploy stack does (on-demand, key `key`) — for tests and a
    /// first try; production tables come from CloudFormation, with TTL on `ttl`.
    pub async fn create(&self) -> Result<(), EcsError> {
        use aws_sdk_dynamodb::types::{
            AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
        };
        const OP: &str = "CreateTable";
        let build = |e: aws_sdk_dynamodb::error::BuildError| EcsError::Request {
            op: OP,
            detail: e.to_string(),
        };
        let attribute = AttributeDefinition::builder()
            .attribute_name("key")
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(build)?;
        let schema = KeySchemaElement::builder()
            .attribute_name("key")
            .key_type(KeyType::Hash)
            .build()
            .map_err(build)?;
        self.aws
            .call(OP, || async {
                self.aws
                    .dynamodb
                    .create_table()
                    .table_name(&self.table)
                    .attribute_definitions(attribute.clone())
                    .key_schema(schema.clone())
                    .billing_mode(BillingMode::PayPerRequest)
                    .send()
                    .await
                    .map_err(|e| classify(OP, e))
            })
            .await?;
        Ok(())
    }
}
