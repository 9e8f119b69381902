//! ActiveGate versions as they appear in image tags — `1.301.70.20241127-162512`,
//! with `-fips` variants — ordered numerically, then by build time; and the
//! policy that picks one.

use chrono::{DateTime, Utc};

pub use crate::model::version::{Constraint, Version, VersionError};

/// How a target chooses.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub constraint: Constraint,
    /// Skip versions built less than this many days ago.
    pub min_age_days: f64,
    pub fips: bool,
}

/// The choice, with why the newer tags were passed over.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    pub chosen: Option<Version>,
    /// (tag, reason), newest first, for the tags newer than the chosen one.
    pub passed_over: Vec<(String, String)>,
    /// Tags that are not ActiveGate versions.
    pub unparsed: usize,
}

impl Policy {
    /// Picks the newest acceptable version among `tags`. `quarantined` tags are never chosen.
    pub fn choose<'a>(
        &self,
        tags: impl IntoIterator<Item = &'a str>,
        quarantined: &[String],
        now: DateTime<Utc>,
    ) -> Choice {
        let mut unparsed = 0;
        let mut versions: Vec<Version> = tags
            .into_iter()
            .filter_map(|t| {
                let v = Version::parse(t);
                unparsed += usize::from(v.is_none());
                v
            })
            .filter(|v| v.fips == self.fips)
            .collect();
        versions.sort_by(|a, b| b.cmp(a));
        let mut passed_over = Vec::new();
        for v in versions {
            let reason = if !self.constraint.allows(&v) {
                Some(format!("outside the constraint {:?}", self.constraint))
            } else if quarantined.iter().any(|q| q == &v.tag) {
                Some("quarantined after a failed rollout".to_owned())
            } else if let Some(age) = v.built.map(|b| now.naive_utc() - b) {
                let days = age.num_seconds() as f64 / 86_400.0;
                (days < self.min_age_days).then(|| {
                    format!(
                        "built {days:.1} days ago, younger than min_age_days {}",
                        self.min_age_days
                    )
                })
            } else if self.min_age_days > 0.0 {
                Some("no build time in the tag, so its age is unknown".to_owned())
            } else {
                None
            };
            match reason {
                Some(r) => passed_over.push((v.tag.clone(), r)),
                None => {
                    return Choice {
                        chosen: Some(v),
                        passed_over,
                        unparsed,
                    };
                }
            }
        }
        Choice {
            chosen: None,
            passed_over,
            unparsed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const TAGS: [&str; 8] = [
        "1.301.70.20241127-162512",
        "1.299.12.20240901-101010",
        "1.303.10.20250115-101010",
        "1.303.10.20250115-101010-fips",
        "1.303.9.20250110-000000",
        "latest",
        "1.30.1.20250301-000000",
        "raw",
    ];

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 1, 20, 0, 0, 0)
            .single()
            .expect("time")
    }

    fn policy(c: &str, min_age: f64, fips: bool) -> Policy {
        Policy {
            constraint: Constraint::parse(c).expect("constraint"),
            min_age_days: min_age,
            fips,
        }
    }

    #[test]
    fn versions_order_numerically_then_by_build_time() {
        let mut v: Vec<Version> = TAGS.iter().filter_map(|t| Version::parse(t)).collect();
        v.sort();
        let tags: Vec<&str> = v.iter().map(|v| v.tag.as_str()).collect();
        assert_eq!(
            tags,
            [
                "1.30.1.20250301-000000",
                "1.299.12.20240901-101010",
                "1.301.70.20241127-162512",
                "1.303.9.20250110-000000",
                "1.303.10.20250115-101010",
                "1.303.10.20250115-101010-fips"
            ]
        );
        assert!(Version::parse("1.2").is_none());
        assert!(Version::parse("1.2.3.garbage").is_none());
        assert!(Version::parse("01.2.3").is_some());
        assert!(Version::parse("1.297.0-raw").is_some());
    }

    #[test]
    fn the_newest_non_fips_version_is_chosen_and_tags_that_do_not_parse_are_ignored() {
        let c = policy("newest", 0.0, false).choose(TAGS, &[], now());
        assert_eq!(
            c.chosen.map(|v| v.tag),
            Some("1.303.10.20250115-101010".into())
        );
        assert_eq!(c.unparsed, 2);
        let c = policy("newest", 0.0, true).choose(TAGS, &[], now());
        assert_eq!(
            c.chosen.map(|v| v.tag),
            Some("1.303.10.20250115-101010-fips".into())
        );
    }

    #[test]
    fn constraints_min_age_and_quarantine_pass_versions_over_with_a_reason() {
        let c = policy("1.301.*", 0.0, false).choose(TAGS, &[], now());
        assert_eq!(
            c.chosen.map(|v| v.tag),
            Some("1.301.70.20241127-162512".into())
        );
        assert!(c.passed_over[0].1.contains("outside the constraint"));
        let c = policy("<= 1.301", 0.0, false).choose(TAGS, &[], now());
        assert_eq!(
            c.chosen.map(|v| v.tag),
            Some("1.301.70.20241127-162512".into())
        );
        let c = policy(">= 1.303", 0.0, false).choose(TAGS, &[], now());
        assert_eq!(
            c.chosen.map(|v| v.tag),
            Some("1.303.10.20250115-101010".into())
        );
        // Built on 15 January: on 20 January it is 4.6 days old; 1.303.9 (10 January) is 10.
        let c = policy("newest", 7.0, false).choose(TAGS, &[], now());
        assert_eq!(
            c.chosen.map(|v| v.tag),
            Some("1.303.9.20250110-000000".into())
        );
        assert!(
            c.passed_over
                .iter()
                .any(|(t, r)| t == "1.303.10.20250115-101010"
                    && r.contains("younger than min_age_days 7")),
            "{:?}",
            c.passed_over
        );
        let c =
            policy("newest", 0.0, false).choose(TAGS, &["1.303.10.20250115-101010".into()], now());
        assert_eq!(
            c.chosen.map(|v| v.tag),
            Some("1.303.9.20250110-000000".into())
        );
        assert_eq!(
            c.passed_over,
            [(
                "1.303.10.20250115-101010".to_owned(),
                "quarantined after a failed rollout".to_owned()
            )]
        );
        let c = policy("1.400.*", 0.0, false).choose(TAGS, &[], now());
        assert!(c.chosen.is_none());
    }

    #[test]
    fn bad_constraints_say_what_is_allowed() {
        for bad in ["", "1.x", "<= 1", "1.301", "~1.301"] {
            let e = Constraint::parse(bad).expect_err(bad);
            assert!(e.to_string().contains("expected `newest`"), "{e}");
        }
    }
}
