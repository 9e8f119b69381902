//! The Dynatrace side of a round: what the environment's answer says of each new task, the
//! lookups by address of tasks its filter may hide, and what it says after the deadline.

use std::collections::BTreeMap;

use tokio::time::Instant;

use super::round::{Seen, Tasks, Verification};
use super::verdict::ip_of;
use super::{Asker, Connected, VerifyPolicy, judge};
use crate::ecs::TaskState;
use crate::health::environment::{Filter, Listed};
use crate::rollout::dynatrace::Listing;

impl Verification<'_> {
    /// What the environment's answer says of each new task; with a zone or group filter, the
    /// tasks it may hide are looked up by address.
    pub(super) async fn hear(&mut self, answer: Option<Vec<Listed>>, new_ips: &[(String, String)]) {
        let (Some(a), Some(gates)) = (self.asker.as_mut(), answer) else {
            return;
        };
        let (zone, group) = (a.check.network_zone.clone(), a.check.group.clone());
        for (arn, ip) in new_ips {
            let Some(s) = self.seen.get_mut(arn) else {
                continue;
            };
            s.listing = judge(
                &gates,
                ip,
                a.expected.as_ref(),
                zone.as_deref(),
                group.as_deref(),
            );
            match s.listing {
                Listing::Wrong(_) => {
                    s.wrong += 1;
                    s.absent = 0;
                }
                Listing::Absent | Listing::Offline(_) => {
                    s.absent += 1;
                    s.wrong = 0;
                }
                _ => {
                    s.absent = 0;
                    s.wrong = 0;
                }
            }
        }
        if a.filtered() {
            diagnose(a, &mut self.seen, new_ips, self.policy, self.revision).await;
        }
        self.last_answer = Some(gates);
    }

    /// What the environment says counts, unless it cannot be asked and `probe-only` is set.
    pub(super) fn dynatrace_ok(&self, s: &Seen) -> bool {
        match &self.asker {
            None => true,
            Some(a) => {
                matches!(s.listing, Listing::Confirmed { .. })
                    || (a.degraded() && !matches!(s.listing, Listing::Wrong(_)))
            }
        }
    }

    /// Adds what Dynatrace saw of the tasks it did not confirm to `reasons`; true when the
    /// environment, not the revision, kept it from verifying (the probes all pass, and the
    /// environment never answered for those tasks or does not list the baseline either).
    pub(super) fn environment_to_blame(
        &self,
        a: &Asker<'_>,
        tasks: &Tasks,
        now: Instant,
        reasons: &mut Vec<String>,
    ) -> bool {
        let running = &tasks.running;
        let missing: Vec<(&TaskState, &Seen)> = running
            .iter()
            .filter_map(|t| Some((t, self.seen.get(&t.arn)?)))
            .filter(|(_, s)| !matches!(s.listing, Listing::Confirmed { .. }))
            .collect();
        reasons.extend(missing.iter().filter_map(|(t, s)| {
            a.task_reason(&ip_of(t), &s.listing, now.duration_since(s.first))
        }));
        reasons.extend(a.error_reason());
        let probes_all_ok = running.iter().all(|t| self.probed_ok(t));
        let only_dynatrace = self.unsure_why.is_none() && probes_all_ok && !missing.is_empty();
        // The environment never answered for them: nothing says the version is bad.
        let unasked = missing.iter().all(|(_, s)| s.listing == Listing::Unknown);
        // Nor when the ActiveGates being replaced are not listed either.
        let old_listed = self.last_answer.as_ref().is_some_and(|gates| {
            tasks
                .old_ips
                .iter()
                .any(|ip| gates.iter().any(|g| g.online() && g.has_address(ip)))
        });
        let baseline_missing = !tasks.old_ips.is_empty() && !old_listed;
        if !(only_dynatrace && (unasked || baseline_missing)) {
            return false;
        }
        if baseline_missing && !unasked {
            reasons.push("the ActiveGates being replaced are not listed online by the environment either: the environment, not the new version, may be at fault; the revision is not blamed".into());
        } else {
            reasons.push(
                "the environment could not confirm the new ActiveGates; the revision is not blamed"
                    .into(),
            );
        }
        true
    }
}

/// Looks up, by address alone, tasks the filtered answer did not list although their probes
/// pass (at most once each): their ActiveGate may be listed in another zone or group.
async fn diagnose(
    asker: &mut Asker<'_>,
    seen: &mut BTreeMap<String, Seen>,
    running: &[(String, String)],
    policy: &VerifyPolicy,
    revision: &str,
) {
    for (arn, ip) in running {
        let Some(s) = seen.get_mut(arn) else { continue };
        let hidden = matches!(s.listing, Listing::Absent | Listing::Offline(_));
        if !hidden
            || s.diagnosed
            || s.ok < policy.healthy_after
            || s.absent < policy.unhealthy_after
        {
            continue;
        }
        s.diagnosed = true;
        let filter = Filter {
            network_address: Some(ip.clone()),
            ..Filter::default()
        };
        let Some(gates) = asker.ask(&filter, revision).await else {
            return;
        };
        let zone = asker.check.network_zone.as_deref();
        let group = asker.check.group.as_deref();
        if let l @ (Listing::Wrong(_) | Listing::Confirmed { .. }) =
            judge(&gates, ip, asker.expected.as_ref(), zone, group)
        {
            match l {
                // Dynatrace sees it, and not as rolled out: as good as that many answers.
                Listing::Wrong(_) => s.wrong = policy.unhealthy_after,
                _ => asker.distrust_filter(revision),
            }
            s.listing = l;
        }
    }
}

/// What the new ActiveGates (and the ones being replaced) report in the environment's answer.
pub(super) fn connected_hosts(gates: &[Listed], revision: &str, tasks: &Tasks) -> Connected {
    let hosts = |ip: &str| {
        gates
            .iter()
            .filter(|g| g.online() && g.has_address(ip))
            .map(|g| g.connected_hosts.unwrap_or(0))
            .max()
    };
    let new: Vec<u64> = tasks
        .new_ips
        .iter()
        .filter_map(|(_, ip)| hosts(ip))
        .collect();
    let old_hosts: Vec<u64> = tasks.old_ips.iter().filter_map(|ip| hosts(ip)).collect();
    Connected {
        revision: revision.to_owned(),
        activegates: new.len() as u32,
        hosts: new.iter().sum(),
        old_hosts: (!old_hosts.is_empty()).then(|| old_hosts.iter().sum()),
    }
}
