//! AWS identifiers, parsed where they enter the program.
//!
//! Each newtype checks its shape once, so that an ARN of the wrong service or a
//! region typo is refused in the config file, with the value and what was
//! expected, instead of failing minutes later inside an AWS call.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a string is not the identifier it should be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected {expected}, found {found}{why}")]
pub struct InvalidId {
    /// What was expected, with an example.
    pub expected: &'static str,
    /// The value as given, quoted and bounded (`model::secret::shown`); for a
    /// secret's ARN only its shape, since a secret may be pasted in its place.
    pub found: String,
    /// Extra explanation, starting with "; " when present.
    pub why: String,
}

impl InvalidId {
    fn new(expected: &'static str, found: &str, why: impl Into<String>) -> Self {
        let why = why.into();
        Self {
            expected,
            found: super::secret::shown(found),
            why: if why.is_empty() {
                why
            } else {
                format!("; {why}")
            },
        }
    }
}

/// Declares a string newtype whose `FromStr`, `Deserialize` and `Serialize`
/// go through one validating function.
macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $check:path) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;
            fn from_str(s: &str) -> Result<Self, InvalidId> {
                $check(s).map(|()| Self(s.to_owned()))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

/// The parts of an ARN: `arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArnParts<'a> {
    pub partition: &'a str,
    pub service: &'a str,
    pub region: &'a str,
    pub account: &'a str,
    pub resource: &'a str,
}

/// Splits an ARN into its parts, checking the partition and account.
pub fn parse_arn(s: &str) -> Option<ArnParts<'_>> {
    let mut it = s.splitn(6, ':');
    let (Some("arn"), Some(partition), Some(service), Some(region), Some(account), Some(resource)) = (
        it.next(),
        it.next(),
        it.next(),
        it.next(),
        it.next(),
        it.next(),
    ) else {
        return None;
    };
    let partition_ok = matches!(partition, "aws" | "aws-cn" | "aws-us-gov");
    let account_ok = account.is_empty() || is_account(account);
    (partition_ok && account_ok && !service.is_empty() && !resource.is_empty()).then_some(
        ArnParts {
            partition,
            service,
            region,
            account,
            resource,
        },
    )
}

fn is_account(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// Checks that `s` is an ARN of `service` whose resource starts with `prefix`.
fn check_arn(
    s: &str,
    expected: &'static str,
    service: &str,
    prefixes: &[&str],
    regional: bool,
) -> Result<(), InvalidId> {
    let Some(arn) = parse_arn(s) else {
        return Err(InvalidId::new(expected, s, "not an ARN"));
    };
    if arn.service != service {
        return Err(InvalidId::new(
            expected,
            s,
            format!("an ARN of service `{}`, not `{service}`", arn.service),
        ));
    }
    if !prefixes.iter().any(|p| arn.resource.starts_with(p)) {
        return Err(InvalidId::new(
            expected,
            s,
            format!("the resource must start with `{}`", prefixes.join("` or `")),
        ));
    }
    if arn.account.is_empty() {
        return Err(InvalidId::new(expected, s, "the account ID is missing"));
    }
    if regional && !is_region(arn.region) {
        return Err(InvalidId::new(
            expected,
            s,
            format!("`{}` is not a region", arn.region),
        ));
    }
    Ok(())
}

fn check_role_arn(s: &str) -> Result<(), InvalidId> {
    check_arn(
        s,
        "an IAM role ARN (arn:aws:iam::123456789012:role/NAME)",
        "iam",
        &["role/"],
        false,
    )
}

string_id!(
    /// An IAM role ARN, e.g. `arn:aws:iam::123456789012:role/ecsTaskExecutionRole`.
    RoleArn,
    check_role_arn
);

impl RoleArn {
    /// The role's account (checked at parse: 12 digits).
    pub fn account(&self) -> &str {
        parse_arn(self.as_str()).map_or("", |a| a.account)
    }
}

fn check_secret_arn(s: &str) -> Result<(), InvalidId> {
    const EXPECTED: &str = "a Secrets Manager secret ARN \
        (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME) or an SSM parameter ARN \
        (arn:aws:ssm:REGION:ACCOUNT:parameter/NAME)";
    match parse_arn(s).map(|a| a.service) {
        Some("ssm") => check_arn(s, EXPECTED, "ssm", &["parameter/"], true),
        _ => check_arn(s, EXPECTED, "secretsmanager", &["secret:"], true),
    }
    .map_err(|e| e.redacted(s))
}

impl InvalidId {
    /// The same refusal with only the shape of the value: used for the fields
    /// that name secrets, where a secret itself may have been pasted.
    fn redacted(mut self, value: &str) -> Self {
        self.found = super::secret::shape(value);
        self.why = self.why.replace(value, "(the value)");
        self
    }
}

string_id!(
    /// Where ECS reads a secret from: a Secrets Manager secret or an SSM
    /// parameter ARN. Only the reference is ever handled, never the value.
    SecretArn,
    check_secret_arn
);

fn check_secrets_manager_arn(s: &str) -> Result<(), InvalidId> {
    check_arn(
        s,
        "a Secrets Manager secret ARN (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME); \
         ECS reads registry credentials only from Secrets Manager",
        "secretsmanager",
        &["secret:"],
        true,
    )
    .map_err(|e| e.redacted(s))
}

string_id!(
    /// A Secrets Manager secret ARN (registry credentials must live there).
    SecretsManagerArn,
    check_secrets_manager_arn
);

fn check_target_group_arn(s: &str) -> Result<(), InvalidId> {
    check_arn(
        s,
        "an Elastic Load Balancing target group ARN \
         (arn:aws:elasticloadbalancing:REGION:ACCOUNT:targetgroup/NAME/ID)",
        "elasticloadbalancing",
        &["targetgroup/"],
        true,
    )
}

string_id!(
    /// An Elastic Load Balancing target group ARN.
    TargetGroupArn,
    check_target_group_arn
);

fn check_registry_arn(s: &str) -> Result<(), InvalidId> {
    check_arn(
        s,
        "a Cloud Map service ARN (arn:aws:servicediscovery:REGION:ACCOUNT:service/srv-ID)",
        "servicediscovery",
        &["service/"],
        true,
    )
}

string_id!(
    /// An AWS Cloud Map service ARN, used as an ECS service registry.
    ServiceRegistryArn,
    check_registry_arn
);

/// Whether `s` looks like an AWS region: `eu-central-1`, `us-gov-west-1`.
pub fn is_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts
            .iter()
            .take(parts.len() - 1)
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts
            .last()
            .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

fn check_region(s: &str) -> Result<(), InvalidId> {
    if is_region(s) {
        Ok(())
    } else {
        Err(InvalidId::new(
            "an AWS region such as `eu-central-1`",
            s,
            "",
        ))
    }
}

string_id!(
    /// An AWS region code, e.g. `eu-central-1`.
    Region,
    check_region
);

fn check_prefixed_hex(s: &str, prefix: &str, expected: &'static str) -> Result<(), InvalidId> {
    let ok = s.strip_prefix(prefix).is_some_and(|hex| {
        (hex.len() == 8 || hex.len() == 17)
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    });
    if ok {
        Ok(())
    } else {
        Err(InvalidId::new(expected, s, ""))
    }
}

fn check_subnet(s: &str) -> Result<(), InvalidId> {
    check_prefixed_hex(
        s,
        "subnet-",
        "a subnet ID such as `subnet-0123456789abcdef0`",
    )
}

string_id!(
    /// A VPC subnet ID, e.g. `subnet-0123456789abcdef0`.
    SubnetId,
    check_subnet
);

fn check_security_group(s: &str) -> Result<(), InvalidId> {
    check_prefixed_hex(
        s,
        "sg-",
        "a security group ID such as `sg-0123456789abcdef0`",
    )
}

string_id!(
    /// A VPC security group ID, e.g. `sg-0123456789abcdef0`.
    SecurityGroupId,
    check_security_group
);

fn check_ecs_name(s: &str) -> Result<(), InvalidId> {
    const EXPECTED: &str = "an ECS name: 1 to 255 letters, digits, `-` and `_`";
    let ok = !s.is_empty()
        && s.len() <= 255
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(InvalidId::new(EXPECTED, s, ""))
    }
}

string_id!(
    /// An ECS cluster, service or task-definition family name.
    EcsName,
    check_ecs_name
);

fn check_cluster(s: &str) -> Result<(), InvalidId> {
    if s.starts_with("arn:") {
        check_arn(
            s,
            "an ECS cluster name or ARN (arn:aws:ecs:REGION:ACCOUNT:cluster/NAME)",
            "ecs",
            &["cluster/"],
            true,
        )
    } else {
        check_ecs_name(s)
    }
}

string_id!(
    /// An ECS cluster, by name or ARN.
    Cluster,
    check_cluster
);

fn check_log_group(s: &str) -> Result<(), InvalidId> {
    const EXPECTED: &str = "a CloudWatch Logs group name: 1 to 512 of letters, digits and `.-_/#`";
    let ok = !s.is_empty()
        && s.len() <= 512
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_/#".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(InvalidId::new(EXPECTED, s, ""))
    }
}

string_id!(
    /// A CloudWatch Logs group name, e.g. `/ecs/dynatrace-activegate`.
    LogGroupName,
    check_log_group
);

/// The retention periods (days) CloudWatch Logs accepts in `PutRetentionPolicy`.
pub const LOG_RETENTION_DAYS: [u32; 22] = [
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_arns_are_checked_for_service_and_resource() {
        assert!(
            "arn:aws:iam::123456789012:role/ecsTaskExecutionRole"
                .parse::<RoleArn>()
                .is_ok()
        );
        assert!(
            "arn:aws-cn:iam::123456789012:role/path/x"
                .parse::<RoleArn>()
                .is_ok()
        );
        let err = "arn:aws:s3:::bucket".parse::<RoleArn>().unwrap_err();
        assert!(err.to_string().contains("service `s3`"), "{err}");
        let err = "arn:aws:iam::123456789012:user/alice"
            .parse::<RoleArn>()
            .unwrap_err();
        assert!(err.to_string().contains("`role/`"), "{err}");
        assert!("arn:aws:iam::12345:role/x".parse::<RoleArn>().is_err());
        assert!("role/x".parse::<RoleArn>().is_err());
    }

    #[test]
    fn secrets_come_from_secrets_manager_or_ssm() {
        let sm = "arn:aws:secretsmanager:eu-central-1:123456789012:secret:dt/tenant-AbCdEf";
        let ssm = "arn:aws:ssm:eu-central-1:123456789012:parameter/dt/auth-token";
        assert!(sm.parse::<SecretArn>().is_ok());
        assert!(ssm.parse::<SecretArn>().is_ok());
        assert!(sm.parse::<SecretsManagerArn>().is_ok());
        let err = ssm.parse::<SecretsManagerArn>().unwrap_err();
        assert!(
            err.to_string().contains("only from Secrets Manager"),
            "{err}"
        );
        let err = "arn:aws:kms:eu-central-1:123456789012:key/abc"
            .parse::<SecretArn>()
            .unwrap_err();
        assert!(err.to_string().contains("service `kms`"), "{err}");
    }

    #[test]
    fn regions_and_vpc_ids() {
        for ok in [
            "eu-central-1",
            "us-east-1",
            "us-gov-west-1",
            "ap-southeast-2",
        ] {
            assert!(ok.parse::<Region>().is_ok(), "{ok}");
        }
        for bad in [
            "eu-central",
            "EU-central-1",
            "eucentral1",
            "",
            "e-central-1",
        ] {
            assert!(bad.parse::<Region>().is_err(), "{bad}");
        }
        assert!("subnet-0123456789abcdef0".parse::<SubnetId>().is_ok());
        assert!("subnet-01234567".parse::<SubnetId>().is_ok());
        assert!("subnet-XYZ".parse::<SubnetId>().is_err());
        assert!("sg-0123456789abcdef0".parse::<SecurityGroupId>().is_ok());
        assert!(
            "subnet-0123456789abcdef0"
                .parse::<SecurityGroupId>()
                .is_err()
        );
    }

    #[test]
    fn names_and_clusters() {
        assert!("observability".parse::<Cluster>().is_ok());
        assert!(
            "arn:aws:ecs:eu-central-1:123456789012:cluster/obs"
                .parse::<Cluster>()
                .is_ok()
        );
        assert!("my cluster".parse::<Cluster>().is_err());
        assert!("/ecs/dynatrace-activegate".parse::<LogGroupName>().is_ok());
        assert!("bad group!".parse::<LogGroupName>().is_err());
        assert!("a".repeat(256).parse::<EcsName>().is_err());
    }
}
