//! `[daemon.lease]`: the DynamoDB table through which several writers (daemon replicas, a
//! person's `rollout` or `rollback`) agree who writes which target's service. Unset: one
//! process, no lease, no DynamoDB call.

use serde::{Deserialize, Deserializer};

use super::values::{Refused, Seconds};
use crate::model::aws::Region;

/// ```toml
/// [daemon.lease]
/// table = "activegate-lifecycle-leases"   # the stack's LeaseTable
/// region = "eu-central-1"                 # where the table is
/// # endpoint_url = "https://…"           # only for a VPC endpoint or a test double
/// duration_seconds = 30                   # a lease lasts this long after each renewal
/// renew_seconds = 5                       # renewed (and targets reassigned) this often
/// margin_seconds = 5                      # writes stop this long before a lease could end
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseSettings {
    /// The DynamoDB table (partition key `key`, a string; TTL on `ttl`).
    pub table: TableName,
    /// The table's region (one table for the whole fleet, whatever the targets' regions).
    pub region: Region,
    /// DynamoDB's endpoint, when not AWS's (a VPC endpoint, moto in tests). `aws.endpoint_url`
    /// does not apply to the table: it names the ECS endpoint. Without either, the SDK's
    /// resolution applies (`AWS_ENDPOINT_URL_DYNAMODB`, then `AWS_ENDPOINT_URL`).
    #[serde(default)]
    pub endpoint_url: Option<super::values::EndpointUrl>,
    /// How long a lease and a replica's heartbeat last after each renewal; more than 3 ×
    /// `renew_seconds`. A dead replica's targets are taken over after about this long.
    #[serde(default = "thirty")]
    pub duration_seconds: Seconds,
    #[serde(default = "five")]
    pub renew_seconds: Seconds,
    /// How long before its lease could end a holder stops writing (clock skew, slow calls);
    /// it must leave at least two renewals of the duration.
    #[serde(default = "five")]
    pub margin_seconds: Seconds,
}

fn thirty() -> Seconds {
    Seconds(30.0)
}

fn five() -> Seconds {
    Seconds(5.0)
}

/// A DynamoDB table name: 3 to 255 of letters, digits, `_`, `-`, `.` (DynamoDB's rule).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableName(pub String);

impl<'de> Deserialize<'de> for TableName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let ok = (3..=255).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
        if !ok {
            return Err(serde::de::Error::custom(Refused(format!(
                "expected a DynamoDB table name of 3 to 255 letters, digits, `_`, `-` and `.`, found {}",
                crate::model::secret::shown(&s)
            ))));
        }
        Ok(Self(s))
    }
}

impl LeaseSettings {
    /// The cross-field rule (checked at load, so `check-config` refuses it too).
    pub fn check(&self) -> Result<(), Refused> {
        let (d, r, m) = (
            self.duration_seconds.0,
            self.renew_seconds.0,
            self.margin_seconds.0,
        );
        if d <= 3.0 * r {
            return Err(Refused(format!(
                "duration_seconds ({d}) must exceed 3 × renew_seconds ({r}): two renewals may fail before a lease is lost"
            )));
        }
        if d - m <= 2.0 * r {
            return Err(Refused(format!(
                "margin_seconds ({m}) must leave at least two renewals (2 × {r} s) of duration_seconds ({d})"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, ConfigError};

    use crate::config::MINIMAL_TARGET as TARGET;

    fn parse(lease: &str) -> Result<Config, ConfigError> {
        Config::parse("ag.toml", &format!("[daemon.lease]\n{lease}\n{TARGET}"))
    }

    #[test]
    fn a_lease_table_gets_the_default_timing() {
        let c = parse("table = \"ag-leases\"\nregion = \"eu-west-1\"").expect("valid");
        let l = c.daemon.lease.expect("lease");
        assert_eq!(l.table.0, "ag-leases");
        assert_eq!(l.region.to_string(), "eu-west-1");
        assert_eq!(
            (l.duration_seconds.0, l.renew_seconds.0, l.margin_seconds.0),
            (30.0, 5.0, 5.0)
        );
        assert!(
            Config::parse("ag.toml", TARGET)
                .unwrap()
                .daemon
                .lease
                .is_none()
        );
    }

    #[test]
    fn a_bad_table_name_or_timing_is_refused_where_it_is() {
        let e = parse("table = \"a b\"\nregion = \"eu-west-1\"")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("DynamoDB table name") && e.starts_with("ag.toml:2:"),
            "{e}"
        );
        let e = parse("table = \"ag-leases\"\nregion = \"eu-west-1\"\nrenew_seconds = 10")
            .unwrap_err()
            .to_string();
        assert!(e.contains("3 × renew_seconds"), "{e}");
        let e = parse("table = \"ag-leases\"\nregion = \"eu-west-1\"\nmargin_seconds = 25")
            .unwrap_err()
            .to_string();
        assert!(e.contains("two renewals"), "{e}");
        let e = parse("table = \"ag-leases\"\nregion = \"eu-west-1\"\nholder = \"x\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("holder"), "{e}");
    }
}
