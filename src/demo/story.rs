//! The demo's stories: what each one does and prints, what the simulator's timeline shows of
//! it, and the sentence and the summary row that tell it.

use std::collections::BTreeSet;

use activegate_lifecycle::daemon::board::TargetStatus;
use activegate_lifecycle::rollout::tags;
use activegate_lifecycle::sim::TimelineEvent;

use super::{BAKE, BROKEN, LATE, SPEED, TURNS_BAD_AFTER, V1, V2, revision_number};

/// What a story does to the world.
pub(super) enum Act {
    Start,
    Publish(&'static str),
    Trigger,
}

/// One story of the demo: what it prints first, its chart marker, what it does, which
/// reconcile outcome ends it, the version its summary row names, and, for a version that
/// turns bad later, when (simulated seconds after RUNNING).
pub(super) struct Chapter {
    pub(super) headline: String,
    pub(super) marker: &'static str,
    pub(super) act: Act,
    pub(super) until: Option<&'static str>,
    pub(super) version: &'static str,
    pub(super) turns_bad_after: Option<f64>,
}

pub(super) fn chapters() -> Vec<Chapter> {
    let bake = BAKE * SPEED;
    vec![
        Chapter {
            headline: format!(
                "0. at start: the service is created for blue/green (ECS task sets) with ActiveGate {V1}, the only version published\n"
            ),
            marker: "0. created",
            act: Act::Start,
            until: None,
            version: V1,
            turns_bad_after: None,
        },
        Chapter {
            headline: format!(
                "\n1. ActiveGate {V2} is published; the next scheduled run starts it as a green task set beside blue, verifies and bakes it ({bake:.0} s), then promotes it\n"
            ),
            marker: "1. new version",
            act: Act::Publish(V2),
            until: Some("verified"),
            version: V2,
            turns_bad_after: None,
        },
        Chapter {
            headline: format!(
                "\n2. a broken {BROKEN} is published: it never answers healthy; its green task set is deleted while blue serves, and it is quarantined\n"
            ),
            marker: "2. broken version",
            act: Act::Publish(BROKEN),
            until: Some("rolled-back"),
            version: BROKEN,
            turns_bad_after: None,
        },
        Chapter {
            headline: "\n3. a manual trigger (what SIGHUP does): the broken version stays quarantined, nothing to do\n".to_owned(),
            marker: "3. manual trigger",
            act: Act::Trigger,
            until: None,
            version: V2,
            turns_bad_after: None,
        },
        Chapter {
            headline: format!(
                "\n4. {LATE} is published: healthy after its start, it answers 503 from {TURNS_BAD_AFTER:.0} s after RUNNING, inside its {bake:.0} s bake; green is deleted, blue never stops\n"
            ),
            marker: "4. turns bad in the bake",
            act: Act::Publish(LATE),
            until: Some("rolled-back"),
            version: LATE,
            turns_bad_after: Some(TURNS_BAD_AFTER),
        },
    ]
}

/// One row of the summary.
pub(super) struct Story {
    pub(super) number: usize,
    pub(super) version: &'static str,
    pub(super) outcome: String,
    pub(super) seconds: f64,
    pub(super) lowest_healthy: usize,
    /// Samples (every 100 ms) in which no task was healthy, once the service had one.
    pub(super) none_healthy: usize,
    /// Simulated seconds from the moment the version was bad (its rollout, or the moment it
    /// turned bad) to the roll-back call (DeleteTaskSet on green).
    pub(super) detect: Option<f64>,
    /// Simulated seconds from the roll-back call until only good tasks ran (green's task set
    /// gone, its tasks stopped).
    pub(super) roll_back: Option<f64>,
}

/// The summary: what the times mean, then one table row per story.
pub(super) fn summary(stories: &[Story]) -> String {
    let mut text = format!(
        "\nTimes in ActiveGate time (the simulator runs {SPEED:.0}× faster). Time to detect: from the moment\nthe version was bad (its rollout; in 4., the moment it turned bad) to the roll-back call that\ndeletes green. Until only good tasks serve: from that call until green's tasks had stopped.\nA moment is a 100 ms sample; fewest healthy counts from the story's first reconcile on.\n\n| story | version | outcome | reconcile (real) | time to detect | until only good tasks serve | fewest healthy | moments with no healthy task |\n|---|---|---|---|---|---|---|---|\n"
    );
    let secs = |v: Option<f64>| v.map_or("-".to_owned(), |s| format!("{s:.0} s"));
    for s in stories {
        text.push_str(&format!(
            "| {} | {} | {} | {:.1} s | {} | {} | {}/2 | {} |\n",
            s.number,
            s.version,
            s.outcome,
            s.seconds,
            secs(s.detect),
            secs(s.roll_back),
            s.lowest_healthy,
            s.none_healthy
        ));
    }
    text
}

/// What the simulator's timeline shows of a story's task sets, from `from` on: the task set
/// created in it (green, or the service's first), what became of it, and what happened to
/// the other tasks (blue's) meanwhile.
#[derive(Debug, Default)]
pub(super) struct Rollout {
    /// The created task set's ARN and revision.
    pub(super) set: Option<(String, u32)>,
    pub(super) created: Option<f64>,
    /// The first of its tasks RUNNING, and the set at steady state (all tasks healthy).
    pub(super) first_running: Option<f64>,
    pub(super) steady: Option<f64>,
    pub(super) promoted: Option<f64>,
    /// DeleteTaskSet on it while it was not primary: the roll-back call.
    pub(super) deleted: Option<f64>,
    /// Its task set gone (every task of it stopped).
    pub(super) gone: Option<f64>,
    /// Tasks of other task sets (blue's) that stopped before it was promoted or gone.
    pub(super) blue_stopped: usize,
    pub(super) quarantined: bool,
}

impl Rollout {
    pub(super) fn read(timeline: &[TimelineEvent], from: f64, version: &str) -> Rollout {
        let mut r = Rollout::default();
        let mut ours: BTreeSet<&str> = BTreeSet::new();
        let image = format!(":{version}");
        for e in timeline.iter().filter(|e| e.time >= from) {
            let this_set = r.set.as_ref().is_some_and(|(arn, _)| *arn == e.subject);
            match e.kind.as_str() {
                "task-set-created" if r.set.is_none() => {
                    let td = e.detail.split(' ').next().unwrap_or_default();
                    r.set = Some((e.subject.clone(), revision_number(td).unwrap_or(0)));
                    r.created = Some(e.time);
                }
                "task-launched" if e.detail.contains(&image) => {
                    ours.insert(&e.subject);
                }
                "task-running" if ours.contains(e.subject.as_str()) => {
                    r.first_running.get_or_insert(e.time);
                }
                "task-set-stability" if this_set && e.detail == "STEADY_STATE" => {
                    r.steady.get_or_insert(e.time);
                }
                "task-set-primary" if this_set => {
                    r.promoted.get_or_insert(e.time);
                }
                "task-set-draining" if this_set && r.promoted.is_none() => {
                    r.deleted.get_or_insert(e.time);
                }
                "task-set-deleted" if this_set => {
                    r.gone.get_or_insert(e.time);
                }
                "task-stopping"
                    if r.created.is_some()
                        && r.promoted.is_none()
                        && r.gone.is_none()
                        && !ours.contains(e.subject.as_str()) =>
                {
                    r.blue_stopped += 1;
                }
                "tagged"
                    if e.detail.split(' ').any(|kv| {
                        kv.starts_with(tags::QUARANTINE_PREFIX) && kv.contains(&image)
                    }) =>
                {
                    r.quarantined = true;
                }
                _ => {}
            }
        }
        r
    }

    fn revision(&self) -> Option<u32> {
        self.set.as_ref().map(|s| s.1)
    }

    /// When the version was bad: when it turned bad, or from its rollout on.
    fn bad_from(&self, turns_bad_after: Option<f64>) -> Option<f64> {
        match turns_bad_after {
            Some(after) => self.first_running.map(|t| t + after),
            None => self.created,
        }
    }
}

pub(super) fn story(
    number: usize,
    chapter: &Chapter,
    t: &TargetStatus,
    lowest_healthy: usize,
    none_healthy: usize,
    r: &Rollout,
) -> Story {
    let seconds = match (t.last_started, t.last_finished) {
        (Some(a), Some(b)) => (b - a).num_milliseconds() as f64 / 1000.0,
        _ => 0.0,
    };
    let outcome = t
        .last_outcome
        .clone()
        .or_else(|| t.last_error.clone())
        .unwrap_or_default();
    let rolled_back = outcome == "rolled-back";
    let outcome = match (&chapter.act, r.promoted, r.deleted) {
        (Act::Start, ..) => format!("{outcome} (service created)"),
        (_, Some(_), _) if r.created.is_some() => format!("{outcome} (green promoted)"),
        (_, None, Some(_)) => format!("{outcome} (green deleted)"),
        _ => outcome,
    };
    let (detect, roll_back) = if rolled_back {
        (
            r.deleted
                .zip(r.bad_from(chapter.turns_bad_after))
                .map(|(d, b)| d - b),
            r.gone.zip(r.deleted).map(|(g, d)| g - d),
        )
    } else {
        (None, None)
    };
    Story {
        number,
        version: chapter.version,
        outcome,
        seconds,
        lowest_healthy,
        none_healthy,
        detect,
        roll_back,
    }
}

/// What happened in a story, in a sentence or two.
pub(super) fn tell(
    chapter: &Chapter,
    t: &TargetStatus,
    r: &Rollout,
    blue: Option<u32>,
    s: &Story,
) -> String {
    let rev = |n: Option<u32>| n.map_or("?".to_owned(), |n| n.to_string());
    let green = rev(r.revision());
    let blue = rev(blue);
    let serving = rev(t.revision.as_deref().and_then(revision_number));
    let bake = BAKE * SPEED;
    let blue_kept = if r.blue_stopped == 0 {
        "none of its tasks stopped".to_owned()
    } else {
        format!("{} of its tasks stopped", r.blue_stopped)
    };
    let quarantined = if r.quarantined {
        format!("{} is quarantined", chapter.version)
    } else {
        format!("{} is NOT quarantined", chapter.version)
    };
    let no_gap = if s.none_healthy == 0 {
        format!("never fewer than {} healthy", s.lowest_healthy)
    } else {
        format!("{} moments with no healthy task", s.none_healthy)
    };
    match (&chapter.act, t.last_outcome.as_deref()) {
        (Act::Start, Some("verified")) => format!(
            "the service was created with the EXTERNAL deployment controller; its first task set (rev {green}) was verified and baked, and serves"
        ),
        (_, Some("verified")) if r.promoted.is_some() => format!(
            "green (rev {green}) ran beside blue (rev {blue}) with {}; after its {bake:.0} s bake it was promoted and blue was retired; {no_gap}",
            if r.steady.is_some() {
                "all 4 tasks healthy"
            } else {
                "both task sets running"
            }
        ),
        (_, Some("rolled-back")) => {
            let caught = s.detect.map_or("?".to_owned(), |d| format!("{d:.0} s"));
            let what = match (chapter.turns_bad_after, r.steady) {
                (Some(after), Some(healthy)) => format!(
                    "was healthy {:.0} s after its rollout, turned bad {after:.0} s after RUNNING and was caught {caught} later, {:.0} s after it was healthy: inside its {bake:.0} s bake",
                    healthy - r.created.unwrap_or(healthy),
                    r.deleted.unwrap_or(healthy) - healthy,
                ),
                (Some(after), None) => {
                    format!("turned bad {after:.0} s after RUNNING and was caught {caught} later")
                }
                (None, _) => {
                    format!("never answered healthy and was caught {caught} after its rollout")
                }
            };
            format!(
                "green (rev {green}) {what}.\n    Its task set was deleted; blue (rev {blue}) kept serving: {blue_kept}, {no_gap}; {quarantined}."
            )
        }
        (Act::Trigger, Some(o)) => {
            format!("{o}: {BROKEN} stays quarantined, rev {serving} keeps serving")
        }
        (_, o) => format!(
            "{}; serving rev {serving}",
            o.or(t.last_error.as_deref()).unwrap_or("no outcome")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::REPO;

    fn ev(time: f64, kind: &str, subject: &str, detail: &str) -> TimelineEvent {
        TimelineEvent {
            time,
            kind: kind.into(),
            subject: subject.into(),
            detail: detail.into(),
        }
    }

    #[test]
    fn a_green_deleted_during_its_bake_is_read_from_the_timeline() {
        let td = "arn:aws:ecs:us-east-1:1:task-definition/dynatrace-activegate";
        let image = format!("{REPO}:{LATE}@sha256:00");
        let timeline = vec![
            ev(
                5.0,
                "task-set-created",
                "ts/blue",
                &format!("{td}:2 at 100 %"),
            ),
            ev(
                10.0,
                "task-set-created",
                "ts/green",
                &format!("{td}:4 at 100 %"),
            ),
            ev(
                10.5,
                "task-launched",
                "task/g1",
                &format!("{image} at 127.0.0.9"),
            ),
            ev(11.0, "task-running", "task/g1", "127.0.0.9"),
            ev(60.0, "task-set-stability", "ts/green", "STEADY_STATE"),
            ev(
                190.0,
                "task-stopping",
                "task/g1",
                "Task failed container health checks",
            ),
            ev(200.0, "task-set-draining", "ts/green", ""),
            ev(203.0, "task-set-deleted", "ts/green", ""),
            ev(
                204.0,
                "tagged",
                "svc",
                &format!("{}abc={image} x=y", tags::QUARANTINE_PREFIX),
            ),
        ];
        let r = Rollout::read(&timeline, 8.0, LATE);
        assert_eq!(r.revision(), Some(4));
        assert_eq!(r.first_running, Some(11.0));
        assert_eq!((r.steady, r.promoted), (Some(60.0), None));
        assert_eq!((r.deleted, r.gone), (Some(200.0), Some(203.0)));
        assert_eq!(r.blue_stopped, 0, "green's own task stopping is not blue's");
        assert!(r.quarantined);
        assert_eq!(r.bad_from(Some(150.0)), Some(161.0));
        assert_eq!(r.bad_from(None), Some(10.0));
    }

    #[test]
    fn a_promoted_green_retires_blue_without_counting_it_as_stopped_early() {
        let td = "arn:aws:ecs:us-east-1:1:task-definition/dynatrace-activegate";
        let timeline = vec![
            ev(
                1.0,
                "task-set-created",
                "ts/green",
                &format!("{td}:3 at 100 %"),
            ),
            ev(50.0, "task-set-primary", "ts/green", ""),
            ev(51.0, "task-stopping", "task/blue1", "Scaling activity"),
            ev(60.0, "task-set-draining", "ts/blue", ""),
        ];
        let r = Rollout::read(&timeline, 0.0, V2);
        assert_eq!(
            (r.promoted, r.deleted, r.blue_stopped),
            (Some(50.0), None, 0)
        );
    }
}
