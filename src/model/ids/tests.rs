use super::*;

const TD: &str = "arn:aws:ecs:eu-west-1:123456789012:task-definition/dynatrace-activegate:42";

#[test]
fn task_definition_arn_round_trips() {
    let a = TaskDefinitionArn::parse(TD).expect("valid");
    assert_eq!(a.family(), "dynatrace-activegate");
    assert_eq!(a.revision(), 42);
    assert_eq!(a.family_revision(), "dynatrace-activegate:42");
    assert_eq!(a.to_string(), TD);
    assert_eq!(TD.parse::<TaskDefinitionArn>(), Ok(a));
}

#[test]
fn task_definition_arn_other_partitions() {
    let a = TaskDefinitionArn::parse("arn:aws-cn:ecs:cn-north-1:1:task-definition/f_1:1")
        .expect("valid");
    assert_eq!(a.family_revision(), "f_1:1");
}

#[test]
fn task_definition_arn_refuses_what_is_not_one() {
    for bad in [
        "",
        "family:3",
        "arn:aws:ecs:eu-west-1:1:task-definition/family",
        "arn:aws:ecs:eu-west-1:1:task-definition/family:",
        "arn:aws:ecs:eu-west-1:1:task-definition/family:0",
        "arn:aws:ecs:eu-west-1:1:task-definition/family:-1",
        "arn:aws:ecs:eu-west-1:1:task-definition/family:+1",
        "arn:aws:ecs:eu-west-1:1:task-definition/family:99999999999",
        "arn:aws:ecs:eu-west-1:1:task-definition/:3",
        "arn:aws:ecs:eu-west-1:1:task-definition/fam ily:3",
        "arn:aws:ecs:eu-west-1:1:task-definition/fämily:3",
        "arn:aws:ecs:eu-west-1:1:service/c/family:3",
        "arn:aws:s3:eu-west-1:1:task-definition/family:3",
        "arn:aws:ecs::1:task-definition/family:3",
        "arn:aws:ecs",
        "arn:::::",
        "🦀🦀🦀",
    ] {
        assert!(TaskDefinitionArn::parse(bad).is_err(), "{bad:?} parsed");
    }
}

#[test]
fn errors_name_what_was_expected_and_are_bounded() {
    let huge = format!(
        "arn:aws:ecs:eu-west-1:1:task-definition/{}:3",
        "x".repeat(100_000)
    );
    let e = TaskDefinitionArn::parse(&huge).expect_err("family too long");
    let text = e.to_string();
    assert!(text.contains("task definition ARN"), "{text}");
    assert!(text.len() < 600, "{} chars", text.len());
    assert_eq!(
        TaskDefinitionArn::parse("").expect_err("empty").to_string(),
        format!("expected {TASK_DEFINITION_ARN}, found an empty value")
    );
    let e = ImageRef::parse(&"a".repeat(1_000_000)).map(|_| ());
    assert!(e.is_ok(), "a long repository alone is not malformed");
    let e = ImageRef::parse(&format!("{}:{}", "a".repeat(10), "t".repeat(1_000_000)))
        .expect_err("tag too long")
        .to_string();
    assert!(e.len() < 600, "{} chars", e.len());
    let e = ImageRef::parse("repo:\u{1b}[31m")
        .expect_err("control")
        .to_string();
    assert!(!e.contains('\u{1b}'), "{e}");
}

#[test]
fn service_arn_both_formats() {
    let s = ServiceArn::parse("arn:aws:ecs:eu-west-1:1:service/prod/activegate").expect("new");
    assert_eq!(s.cluster(), Some("prod"));
    assert_eq!(s.name(), "activegate");
    assert_eq!(
        s.to_string(),
        "arn:aws:ecs:eu-west-1:1:service/prod/activegate"
    );
    let old = ServiceArn::parse("arn:aws:ecs:eu-west-1:1:service/activegate").expect("old");
    assert_eq!(old.cluster(), None);
    assert_eq!(old.name(), "activegate");
    for bad in [
        "",
        "arn:aws:ecs:eu-west-1:1:service/",
        "arn:aws:ecs:eu-west-1:1:service/a/b/c",
        "arn:aws:ecs:eu-west-1:1:task/a/b",
        "service/a/b",
    ] {
        assert!(ServiceArn::parse(bad).is_err(), "{bad:?} parsed");
    }
}

#[test]
fn task_set_arn_keeps_the_id_with_its_slash() {
    let a = "arn:aws:ecs:eu-west-1:1:task-set/prod/activegate/ecs-svc/1234567890";
    let t = TaskSetArn::parse(a).expect("valid");
    assert_eq!(t.cluster(), "prod");
    assert_eq!(t.service(), "activegate");
    assert_eq!(t.id(), "ecs-svc/1234567890");
    assert_eq!(t.to_string(), a);
    for bad in [
        "",
        "arn:aws:ecs:eu-west-1:1:task-set/prod/activegate",
        "arn:aws:ecs:eu-west-1:1:task-set/prod/activegate/",
        "arn:aws:ecs:eu-west-1:1:task-set//activegate/ecs-svc/1",
        "arn:aws:ecs:eu-west-1:1:task-set/prod/activegate/ecs svc/1",
    ] {
        assert!(TaskSetArn::parse(bad).is_err(), "{bad:?} parsed");
    }
}

#[test]
fn task_arn_id() {
    let t = TaskArn::parse("arn:aws:ecs:eu-west-1:1:task/prod/0123abcd").expect("new");
    assert_eq!(t.id(), "0123abcd");
    assert_eq!(t.cluster(), Some("prod"));
    let old = TaskArn::parse("arn:aws:ecs:eu-west-1:1:task/0123abcd").expect("old");
    assert_eq!(old.id(), "0123abcd");
    assert_eq!(old.cluster(), None);
    for bad in [
        "",
        "arn:aws:ecs:eu-west-1:1:task/",
        "arn:aws:ecs:eu-west-1:1:task/prod/",
        "arn:aws:ecs:eu-west-1:1:task/a/b/c",
        "arn:aws:ecs:eu-west-1:1:task-set/a/b/c",
    ] {
        assert!(TaskArn::parse(bad).is_err(), "{bad:?} parsed");
    }
}

#[test]
fn image_ref_parts() {
    let cases: [(&str, &str, Option<&str>, Option<&str>); 6] = [
        (
            "public.ecr.aws/dynatrace/dynatrace-activegate:1.303.10.20250115-101010",
            "public.ecr.aws/dynatrace/dynatrace-activegate",
            Some("1.303.10.20250115-101010"),
            None,
        ),
        ("registry:5000/ag", "registry:5000/ag", None, None),
        (
            "registry:5000/ag:1.2",
            "registry:5000/ag",
            Some("1.2"),
            None,
        ),
        (
            "registry:5000/ag:1.2@sha256:abcdef0123",
            "registry:5000/ag",
            Some("1.2"),
            Some("sha256:abcdef0123"),
        ),
        ("ag@sha256:abc", "ag", None, Some("sha256:abc")),
        ("ag", "ag", None, None),
    ];
    for (s, repo, tag, digest) in cases {
        let r = ImageRef::parse(s).expect(s);
        assert_eq!(r.repository(), repo, "{s}");
        assert_eq!(r.tag(), tag, "{s}");
        assert_eq!(r.digest(), digest, "{s}");
        assert_eq!(r.is_pinned(), tag.is_some() || digest.is_some(), "{s}");
        assert_eq!(r.to_string(), s);
    }
}

#[test]
fn image_ref_refuses_what_is_not_one() {
    for bad in [
        "",
        " ",
        "ag:",
        "ag:.1",
        "ag:-1",
        "ag:a:b",
        "ag@",
        "ag@sha256",
        "ag@sha256:",
        "ag@:abc",
        "ag@sha256:abc@sha256:def",
        "/ag",
        "ag/",
        "reg//ag",
        ":1.2",
        "ag:1.2 ",
        "ag:1.2\n",
        "äg:1",
        "ag:🦀",
    ] {
        assert!(ImageRef::parse(bad).is_err(), "{bad:?} parsed");
    }
}

#[test]
fn shorten_gives_family_revision_or_the_text_as_it_is() {
    assert_eq!(TaskDefinitionArn::shorten(TD), "dynatrace-activegate:42");
    for other in ["dynatrace-activegate:42", "", "-", "🦀"] {
        assert_eq!(TaskDefinitionArn::shorten(other), other);
    }
}

#[test]
fn a_pin_is_asked_for_by_an_at_or_a_colon_in_the_last_segment() {
    for pinned in [
        "repo/ag:1",
        "repo/ag:",
        "repo/ag@latest",
        "reg:5000//ag:1",
        "repo/ag@sha256:ab",
    ] {
        assert!(ImageRef::names_tag_or_digest(pinned), "{pinned}");
    }
    for bare in ["repo/ag", "reg:5000/ag", "ag", ""] {
        assert!(!ImageRef::names_tag_or_digest(bare), "{bare}");
    }
}
