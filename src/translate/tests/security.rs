use super::*;

// ---- security context --------------------------------------------------------------------------

#[test]
fn security_context_maps_what_ecs_can_express() {
    let t = translate_ok(
        &sts(&format!(
            "{MINIMAL}    securityContext:\n      allowPrivilegeEscalation: false\n      capabilities:\n        drop: [all]\n        add: [NET_ADMIN, SYS_PTRACE]\n      privileged: false\n      readOnlyRootFilesystem: true\n      runAsNonRoot: true\n      seccompProfile: {{type: RuntimeDefault}}\n"
        )),
        &full(),
    );
    let c = ag(&t);
    assert_eq!(c.user.as_deref(), Some("1001"));
    assert_eq!(c.readonly_root_filesystem, Some(true));
    assert_eq!(c.privileged, None);
    let caps = c
        .linux_parameters
        .as_ref()
        .and_then(|l| l.capabilities.as_ref())
        .expect("capabilities");
    assert_eq!(caps.drop, ["ALL"]);
    assert_eq!(caps.add, ["SYS_PTRACE"]);
    assert!(has_line(
        &t,
        Action::Dropped,
        "Fargate allows adding only SYS_PTRACE"
    ));
    assert!(has_line(&t, Action::Dropped, "allowPrivilegeEscalation"));
    assert!(has_line(&t, Action::Dropped, "seccompProfile"));
}

#[test]
fn explicit_user_and_group_win_over_the_default() {
    let t = translate_ok(
        &sts(&format!(
            "{MINIMAL}    securityContext: {{runAsUser: 1500, runAsGroup: 1600, runAsNonRoot: true}}\n"
        )),
        &full(),
    );
    assert_eq!(ag(&t).user.as_deref(), Some("1500:1600"));
}
