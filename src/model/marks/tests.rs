use super::*;

fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The wire format is what earlier versions wrote: state they left must still be read.
#[test]
fn keys_are_the_ones_earlier_versions_wrote() {
    assert_eq!(MANAGED_BY, "managed-by");
    assert_eq!(HASH, "activegate-lifecycle:content-hash");
    assert_eq!(IMAGE, "activegate-lifecycle:image");
    assert_eq!(LAST_GOOD, "activegate-lifecycle:last-good");
    assert_eq!(ROLLOUT_FROM, "activegate-lifecycle:rollout-from");
    assert_eq!(ROLLOUT_TO, "activegate-lifecycle:rollout-to");
    assert_eq!(ROLLOUT_STARTED, "activegate-lifecycle:rollout-started");
    assert_eq!(QUARANTINED, "activegate-lifecycle:quarantined");
    assert_eq!(QUARANTINE_PREFIX, "activegate-lifecycle:quarantine:");
    assert_eq!(VERDICT, "activegate-lifecycle:verdict");
    assert_eq!(EXTERNAL_ID, "activegate-lifecycle");
    assert_eq!(MIGRATED_TO, "activegate-lifecycle:migrated-to");
    assert_eq!(DOWNTIME, "activegate-lifecycle:downtime");
    assert_eq!(OBSERVED_SINCE, "activegate-lifecycle:observed-since");
    assert_eq!(TARGET, "activegate-lifecycle:target");
    // The key of a quarantined image, as version 1 computed it (SHA-256, 6 bytes).
    assert_eq!(
        quarantine_key("registry/ag:1.2.3"),
        format!(
            "{QUARANTINE_PREFIX}{}",
            &hex_sha256("registry/ag:1.2.3")[..12]
        )
    );
}

fn hex_sha256(s: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, s.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn marks_read_every_field_and_ignore_other_tags() {
    let image = "registry/ag:1.2.3";
    let key = quarantine_key(image);
    let t = tags(&[
        (LAST_GOOD, "arn:td:1"),
        (ROLLOUT_TO, "arn:td:2"),
        (ROLLOUT_FROM, "arn:td:1"),
        (ROLLOUT_STARTED, "1700000000"),
        (VERDICT, "passed:ecs-svc/1"),
        (&key, image),
        (MIGRATED_TO, "ag-bg"),
        (DOWNTIME, "2026-12-01=3.5"),
        (OBSERVED_SINCE, "2026-11-01T00:00:00Z"),
        ("owner", "team"),
    ]);
    let m = Marks::parse(&t);
    assert_eq!(m.last_good.as_deref(), Some("arn:td:1"));
    assert_eq!(m.to.as_deref(), Some("arn:td:2"));
    assert_eq!(m.from.as_deref(), Some("arn:td:1"));
    assert_eq!(m.started.as_deref(), Some("1700000000"));
    assert_eq!(m.verdict, Some(Verdict::Passed("ecs-svc/1".into())));
    assert!(m.is_quarantined(image));
    assert!(!m.is_quarantined("registry/ag:1.2.4"));
    assert_eq!(m.quarantined_images().collect::<Vec<_>>(), vec![image]);
    assert_eq!(m.migrated_to.as_deref(), Some("ag-bg"));
    assert_eq!(m.downtime.as_deref(), Some("2026-12-01=3.5"));
    assert_eq!(m.observed_since.as_deref(), Some("2026-11-01T00:00:00Z"));
    assert_eq!(Marks::parse(&BTreeMap::new()), Marks::default());
}

#[test]
fn a_quarantine_key_whose_value_is_another_image_does_not_quarantine() {
    let key = quarantine_key("registry/ag:1.2.3");
    let m = Marks::parse(&tags(&[(&key, "registry/ag:9.9.9")]));
    assert!(!m.is_quarantined("registry/ag:1.2.3"));
}

#[test]
fn verdicts_round_trip_and_junk_is_none() {
    for v in [
        Verdict::Passed("ecs-svc/1".into()),
        Verdict::Failed("g".into()),
        Verdict::Inconclusive(String::new()),
    ] {
        assert_eq!(Verdict::parse(&v.tag_value()), Some(v.clone()));
        assert_eq!(verdict(&v), vec![(VERDICT.to_owned(), v.tag_value())]);
    }
    for junk in ["", "passed", "maybe:g", "🦀:g"] {
        assert_eq!(Verdict::parse(junk), None, "{junk:?}");
        assert_eq!(Marks::parse(&tags(&[(VERDICT, junk)])).verdict, None);
    }
}

#[test]
fn changes_render_as_ecs_tags() {
    assert_eq!(
        last_good("arn:td:3"),
        vec![(LAST_GOOD.to_owned(), "arn:td:3".to_owned())]
    );
    assert_eq!(
        rollout_started("arn:td:3", Some("arn:td:2"), "1700000000"),
        vec![
            (ROLLOUT_TO.to_owned(), "arn:td:3".to_owned()),
            (ROLLOUT_STARTED.to_owned(), "1700000000".to_owned()),
            (ROLLOUT_FROM.to_owned(), "arn:td:2".to_owned()),
        ]
    );
    assert_eq!(rollout_started("arn:td:1", None, "1").len(), 2);
    let rendered: BTreeMap<String, String> = rollout_started("b", Some("a"), "7")
        .into_iter()
        .chain(last_good("a"))
        .collect();
    let m = Marks::parse(&rendered);
    assert_eq!(
        (m.to.as_deref(), m.from.as_deref(), m.started.as_deref()),
        (Some("b"), Some("a"), Some("7"))
    );
    assert_eq!(m.last_good.as_deref(), Some("a"));
    assert_eq!(
        quarantined_revision(),
        vec![(QUARANTINED.to_owned(), "true".to_owned())]
    );
    assert_eq!(
        migrated_to("ag-bg"),
        vec![(MIGRATED_TO.to_owned(), "ag-bg".to_owned())]
    );
}

#[test]
fn long_images_are_cut_to_the_tag_value_limit() {
    let huge = format!("registry/ag:{}", "1".repeat(10_000));
    let q = quarantine(&huge);
    assert_eq!(q[0].0, quarantine_key(&huge));
    assert_eq!(q[0].1.chars().count(), 256);
    let r = revision("abc", &"é".repeat(1_000));
    assert_eq!(r[0], (HASH.to_owned(), "abc".to_owned()));
    assert_eq!(r[1].1.chars().count(), 256);
    for k in ROLLOUT_KEYS {
        assert!(k.starts_with("activegate-lifecycle:"));
    }
}
