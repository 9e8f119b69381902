use super::*;

// ---- resources ---------------------------------------------------------------------------------

fn with_resources(req: &str, lim: &str) -> String {
    sts(&format!(
        "{MINIMAL}    resources:\n      requests: {{{req}}}\n      limits: {{{lim}}}\n"
    ))
}

#[test]
fn quarter_cpu_half_gib_rounds_to_the_smallest_fargate_size() {
    let t = translate_ok(
        &with_resources("cpu: 250m, memory: 512Mi", "cpu: 250m, memory: 512Mi"),
        &full(),
    );
    assert_eq!(
        (
            t.task_definition.cpu.as_str(),
            t.task_definition.memory.as_str()
        ),
        ("256", "512")
    );
    assert_eq!(ag(&t).cpu, Some(256));
    // A request equal to the limit: only the hard limit (ECS wants memory above
    // memoryReservation; without a reservation the limit is what is reserved).
    assert_eq!(ag(&t).memory_reservation, None);
    assert_eq!(ag(&t).memory, Some(512));
    assert!(has_line(&t, Action::Adjusted, "equal to the limit"));
    assert!(has_line(
        &t,
        Action::Warning,
        "below Dynatrace's sizing guidance"
    ));
}

#[test]
fn odd_sizes_round_up_to_a_valid_pair() {
    let t = translate_ok(
        &with_resources("cpu: 300m, memory: 600Mi", "memory: 3Gi"),
        &full(),
    );
    // 300m = 308 units → 512 CPU; 3 GiB fits 512 CPU.
    assert_eq!(
        (
            t.task_definition.cpu.as_str(),
            t.task_definition.memory.as_str()
        ),
        ("512", "3072")
    );
    assert!(has_line(
        &t,
        Action::Adjusted,
        "rounded up to the smallest valid size"
    ));
    assert!(!has_line(&t, Action::Warning, "sizing guidance"));
}

#[test]
fn missing_resources_use_dynatrace_small_size() {
    let t = translate_ok(&sts(MINIMAL), &full());
    assert_eq!(
        (
            t.task_definition.cpu.as_str(),
            t.task_definition.memory.as_str()
        ),
        ("256", "2048")
    );
    assert!(has_line(&t, Action::Added, "small routing ActiveGate"));
}

#[test]
fn beyond_fargate_is_refused() {
    let e = err(&with_resources("cpu: 32", "memory: 1Gi"), &full());
    assert!(
        matches!(e, TranslateError::TooLargeForFargate { .. }),
        "{e}"
    );
}

#[test]
fn an_unparseable_quantity_names_its_line() {
    let e = err(&with_resources("cpu: 250x", "memory: 1Gi"), &full());
    let msg = e.to_string();
    assert!(msg.starts_with("test.yaml:12:"), "{msg}");
    assert!(msg.contains("`250x` is not a Kubernetes quantity"), "{msg}");
}
