//! Whose keys sign, in the simulator (issue #16): STS AssumeRole at the simulator's endpoint
//! answers the real SDK (the product's assumed-role path and `aws_sdk_sts` directly), only
//! for roles of the simulator's account; with `require_assumed_role` ECS calls signed with
//! any other key are refused, and with `check_region` calls scoped to another region are.

mod simkit;

use activegate_lifecycle::ecs::{AssumeRole, ClientSettings, Clients, EcsError};
use activegate_lifecycle::model::secret::Redacted;
use activegate_lifecycle::sim::{Sim, SimHandle, SimOptions};
use aws_config::retry::RetryConfig;
use aws_sdk_ecs::error::ProvideErrorMetadata;

const ACCOUNT: &str = "210987654321";
const ROLE: &str = "arn:aws:iam::210987654321:role/activegate-lifecycle";
const SESSION: &str = "ag-lifecycle-sim";
/// Shaped like no token the scrubber knows, so that only its absence can pass.
const EXTERNAL_ID: &str = "external-id-canary-51c0de";
const BASE_KEY: &str = "AKIDBASEKEY";

async fn sim(region: &str, require_assumed_role: bool, check_region: bool) -> SimHandle {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Sim::start(SimOptions {
        listen: "127.0.0.1:0".parse().expect("address"),
        region: region.to_owned(),
        account: ACCOUNT.to_owned(),
        require_assumed_role,
        check_region,
        ..SimOptions::default()
    })
    .await
    .expect("the simulator starts")
}

/// An SDK configuration signing with the base key in `region`, one attempt per call.
async fn base_config(sim: &SimHandle, region: &str) -> aws_config::SdkConfig {
    simkit::sdk_config(
        sim.endpoint(),
        region,
        simkit::credentials(BASE_KEY),
        RetryConfig::disabled(),
    )
    .await
}

fn settings(sim: &SimHandle, role: Option<&str>) -> ClientSettings {
    let mut s = ClientSettings::new(sim.region());
    s.endpoint_url = Some(sim.endpoint().to_owned());
    s.static_credentials = Some((BASE_KEY.into(), "not-a-secret".into()));
    s.max_attempts = 1;
    s.role = role.map(|arn| AssumeRole {
        arn: arn.to_owned(),
        external_id: Some(Redacted(EXTERNAL_ID.into())),
        session_name: SESSION.into(),
    });
    s
}

/// The error code of an ECS call made through the raw SDK.
async fn list_task_definitions_code(config: &aws_config::SdkConfig) -> Option<String> {
    aws_sdk_ecs::Client::new(config)
        .list_task_definitions()
        .send()
        .await
        .err()
        .map(|e| {
            e.into_service_error()
                .code()
                .unwrap_or("no code")
                .to_owned()
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_product_assumes_a_role_at_the_simulator_and_only_its_keys_may_call_ecs() {
    let sim = sim("eu-central-1", true, true).await;
    let clients = Clients::new();
    let assumed = clients.aws(settings(&sim, Some(ROLE))).await;

    // Through the SDK's assume-role provider: STS at the simulator's endpoint.
    let identity = assumed.caller_identity().await.expect("assumed identity");
    assert_eq!(identity.account, ACCOUNT, "{identity:?}");
    assert_eq!(
        identity.arn,
        format!("arn:aws:sts::{ACCOUNT}:assumed-role/activegate-lifecycle/{SESSION}")
    );
    assert!(
        identity.user_id.starts_with("AROA") && identity.user_id.ends_with(&format!(":{SESSION}")),
        "{identity:?}"
    );
    let keys = sim.issued_keys();
    assert_eq!(keys.len(), 1, "one AssumeRole, cached by the SDK: {keys:?}");
    let (key_id, issued) = keys.iter().next().expect("a key");
    assert!(key_id.starts_with("ASIA"), "{key_id}");
    assert_eq!(
        (issued.role_arn.as_str(), issued.session_name.as_str()),
        (ROLE, SESSION)
    );

    // ECS with the assumed credentials is served, and attributed to the issued key.
    let arn = assumed
        .register_task_definition(&simkit::golden_task_definition(), &[])
        .await
        .expect("registered with the assumed role");
    assert!(
        arn.starts_with(&format!(
            "arn:aws:ecs:eu-central-1:{ACCOUNT}:task-definition/"
        )),
        "{arn}"
    );
    let writes = sim.write_calls();
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert_eq!(&writes[0].access_key, key_id);
    assert_eq!(
        sim.calls_by_key().get(key_id.as_str()),
        Some(&2),
        "GetCallerIdentity and the registration"
    );

    // The base key may call STS but not ECS: AWS does not know it as an ECS caller here.
    let base = clients.aws(settings(&sim, None)).await;
    let refused = base
        .register_task_definition(&simkit::golden_task_definition(), &[])
        .await
        .expect_err("the base key is refused");
    match refused {
        EcsError::Service { code, status, .. } => {
            assert_eq!(
                (code.as_str(), status),
                ("UnrecognizedClientException", 400)
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(sim.calls_by_key().contains_key(BASE_KEY));
    assert_eq!(
        sim.write_calls().len(),
        2,
        "the refused write is recorded too"
    );

    // The external id is in no answer of the control API and no record of the simulator.
    let shown = format!(
        "{:?} {} {:?}",
        sim.issued_keys(),
        serde_json::to_string(&sim.issued_keys()).expect("JSON"),
        sim.write_calls()
    );
    assert!(!shown.contains(EXTERNAL_ID), "{shown}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_of_another_account_is_denied_by_sts() {
    let sim = sim("us-east-1", false, false).await;
    let sts = aws_sdk_sts::Client::new(&base_config(&sim, "us-east-1").await);
    let denied = sts
        .assume_role()
        .role_arn("arn:aws:iam::123456789012:role/elsewhere")
        .role_session_name(SESSION)
        .send()
        .await
        .expect_err("another account's role");
    let denied = denied.into_service_error();
    assert_eq!(denied.code(), Some("AccessDenied"), "{denied:?}");
    assert!(
        denied
            .message()
            .is_some_and(|m| m.contains("sts:AssumeRole") && m.contains("elsewhere")),
        "{denied:?}"
    );
    assert!(sim.issued_keys().is_empty());

    // The simulator's own account: credentials in the SDK's shape, with an expiry.
    let out = sts
        .assume_role()
        .role_arn(ROLE)
        .role_session_name(SESSION)
        .external_id(EXTERNAL_ID)
        .duration_seconds(900)
        .send()
        .await
        .expect("assumed");
    let creds = out.credentials().expect("credentials");
    assert!(creds.access_key_id().starts_with("ASIA"));
    assert_eq!(creds.secret_access_key().len(), 40);
    assert!(!creds.session_token().is_empty());
    let expires = creds.expiration().secs();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64;
    assert!(
        (now + 800..=now + 1_000).contains(&expires),
        "{expires} vs {now}"
    );
    assert_eq!(
        out.assumed_role_user().map(|u| u.arn()),
        Some(
            format!("arn:aws:sts::{ACCOUNT}:assumed-role/activegate-lifecycle/{SESSION}").as_str()
        )
    );

    // A session name outside STS's pattern is a validation error.
    let invalid = sts
        .assume_role()
        .role_arn(ROLE)
        .role_session_name("has space")
        .send()
        .await
        .expect_err("invalid session name")
        .into_service_error();
    assert_eq!(invalid.code(), Some("ValidationError"), "{invalid:?}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_scoped_to_another_region_are_refused_when_checked() {
    let checked = sim("eu-west-1", false, true).await;
    let wrong = base_config(&checked, "us-east-1").await;
    assert_eq!(
        list_task_definitions_code(&wrong).await.as_deref(),
        Some("InvalidSignatureException")
    );
    let right = base_config(&checked, "eu-west-1").await;
    assert_eq!(list_task_definitions_code(&right).await, None);
    // STS refuses the wrong scope too, in its own error shape.
    let sts_refused = aws_sdk_sts::Client::new(&wrong)
        .get_caller_identity()
        .send()
        .await
        .expect_err("wrong region")
        .into_service_error();
    assert_eq!(
        sts_refused.code(),
        Some("SignatureDoesNotMatch"),
        "{sts_refused:?}"
    );
    checked.shutdown().await;

    // Unchecked (the default): any key and any scope are served.
    let open = sim("eu-west-1", false, false).await;
    let wrong = base_config(&open, "us-east-1").await;
    assert_eq!(list_task_definitions_code(&wrong).await, None);
    assert_eq!(open.calls_by_key().get(BASE_KEY), Some(&1));
    open.shutdown().await;
}
