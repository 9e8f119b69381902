//! Assumed roles (issue #16, item 3) against moto, an STS and ECS we did not write: a
//! client whose settings name a role gets its credentials from the SDK's assume-role
//! provider (base credentials as the source, STS at the configured endpoint), and its ECS
//! calls carry them — moto files what they create under the role's account.
//!
//! The test script starts `moto_server` and sets MOTO_ENDPOINT (scripts/moto_conformance.sh);
//! by hand: `MOTO_ENDPOINT=http://127.0.0.1:5000 cargo test --test assume_role -- --ignored`.

use std::io::Write;
use std::sync::{Arc, Mutex};

use activegate_lifecycle::ecs::{AssumeRole, ClientSettings, Clients};
use activegate_lifecycle::model::secret::Redacted;
use activegate_lifecycle::model::task_definition::TaskDefinition;

/// The account the role lives in: not moto's default account (123456789012) of the base
/// credentials, so that where moto files a resource tells whose credentials made the call.
const ROLE_ACCOUNT: &str = "210987654321";
const ROLE: &str = "arn:aws:iam::210987654321:role/activegate-lifecycle";
const SESSION: &str = "ag-lifecycle-test";
/// Shaped like no token the scrubber knows, so that only redaction can keep it out.
const EXTERNAL_ID: &str = "external-id-canary-7f3a9c";

fn endpoint() -> String {
    std::env::var("MOTO_ENDPOINT")
        .expect("MOTO_ENDPOINT names a running moto_server (the test script starts one)")
}

fn settings(role: Option<AssumeRole>) -> ClientSettings {
    let mut s = ClientSettings::new("eu-central-1");
    s.endpoint_url = Some(endpoint());
    s.static_credentials = Some(("testing".into(), "testing".into()));
    s.max_attempts = 1;
    s.role = role;
    s
}

fn role() -> AssumeRole {
    AssumeRole {
        arn: ROLE.into(),
        external_id: Some(Redacted(EXTERNAL_ID.into())),
        session_name: SESSION.into(),
    }
}

fn task_definition() -> TaskDefinition {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/golden/activegate.task-definition.json"
    );
    let mut td: TaskDefinition =
        serde_json::from_slice(&std::fs::read(path).expect("golden task definition"))
            .expect("a task definition");
    // A family of its own: moto_conformance, run against the same moto, lists its family's
    // revisions and expects only its own.
    td.family = "assume-role-test".into();
    // moto insists on a memory value for every container (ECS does not).
    for c in &mut td.container_definitions {
        c.memory.get_or_insert(128);
    }
    td
}

/// Everything the process logs, at every level, for the redaction check.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
#[ignore = "needs moto_server; run by scripts/test.sh"]
async fn a_client_with_a_role_calls_ecs_with_the_assumed_credentials() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let clients = Clients::new();
    let base = clients.aws(settings(None)).await;
    let assumed = clients.aws(settings(Some(role()))).await;

    // Who each client is, through STS with the client's own credentials provider.
    let base_identity = base.caller_identity().await.expect("base identity");
    assert_eq!(base_identity.account, "123456789012", "{base_identity:?}");
    let identity = assumed.caller_identity().await.expect("assumed identity");
    assert_eq!(identity.account, ROLE_ACCOUNT, "{identity:?}");
    assert_eq!(
        identity.arn,
        format!("arn:aws:sts::{ROLE_ACCOUNT}:assumed-role/activegate-lifecycle/{SESSION}")
    );

    // An ECS call with the role: moto files the task definition under the role's account,
    // so the request was signed with the credentials STS handed out for the role.
    let td = task_definition();
    let arn = assumed
        .register_task_definition(&td, &[])
        .await
        .expect("registered with the assumed role");
    assert!(
        arn.starts_with(&format!(
            "arn:aws:ecs:eu-central-1:{ROLE_ACCOUNT}:task-definition/"
        )),
        "{arn}"
    );
    let base_arn = base
        .register_task_definition(&td, &[])
        .await
        .expect("registered with the base credentials");
    assert!(
        base_arn.contains(":123456789012:task-definition/"),
        "{base_arn}"
    );

    // A second client for the same role shares the cached credentials: its call is made
    // with the role's session too, and the provider asked STS once in all (it logs each time).
    let again = clients.aws(settings(Some(role()))).await;
    assert_eq!(
        again.caller_identity().await.expect("identity").arn,
        identity.arn
    );

    // The external id is in no Debug form and no log line, at TRACE.
    let shown = format!("{:?}", settings(Some(role())));
    assert!(shown.contains(ROLE), "{shown}");
    assert!(!shown.contains(EXTERNAL_ID), "{shown}");
    assert!(!format!("{:?}", role()).contains(EXTERNAL_ID));
    drop(_guard);
    let logs = String::from_utf8_lossy(
        &captured
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    )
    .into_owned();
    assert_eq!(
        logs.matches("retrieving assumed credentials").count(),
        1,
        "one AssumeRole for two clients and three calls:\n{logs}"
    );
    let leaks: Vec<&str> = logs.lines().filter(|l| l.contains(EXTERNAL_ID)).collect();
    assert!(leaks.is_empty(), "the external id was logged: {leaks:#?}");
}

fn policy(name: &str) -> serde_json::Value {
    let path = format!("{}/deploy/iam/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).expect("the policy file"))
        .expect("the policy is JSON")
}

/// The deploy texts for targets in other accounts: the trust policy lets only the daemon's
/// task role in, and only with the external id; the daemon's grant names the roles, no `*`.
#[test]
fn the_cross_account_policies_grant_assume_role_and_nothing_else() {
    let trust = policy("target-account-trust-policy.json");
    assert_eq!(trust["Version"], "2012-10-17");
    let statements = trust["Statement"].as_array().expect("statements");
    assert_eq!(statements.len(), 1);
    let s = &statements[0];
    assert_eq!(s["Effect"], "Allow");
    assert_eq!(s["Action"], "sts:AssumeRole");
    assert_eq!(s["Principal"]["AWS"], "${DaemonTaskRoleArn}");
    assert_eq!(
        s["Condition"]["StringEquals"]["sts:ExternalId"],
        "${ExternalId}"
    );

    let grant = policy("assume-target-roles-policy.json");
    assert_eq!(grant["Version"], "2012-10-17");
    let statements = grant["Statement"].as_array().expect("statements");
    assert_eq!(statements.len(), 1);
    let s = &statements[0];
    assert_eq!(s["Effect"], "Allow");
    assert_eq!(s["Action"], "sts:AssumeRole");
    let resources = s["Resource"].as_array().expect("resources");
    assert!(!resources.is_empty());
    assert!(
        resources
            .iter()
            .all(|r| r.as_str().is_some_and(|r| !r.contains('*')))
    );
}
