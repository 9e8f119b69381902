//! Version discovery against the simulator's registry (pagination, the token
//! flow, digests, 429) and against a hostile one (garbage, redirect loops,
//! missing headers, a token endpoint that refuses); and wired into the
//! engine: a published version is rolled out pinned to its digest, a bad one
//! rolled back and quarantined, and never chosen again.

mod simkit;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use activegate_lifecycle::rollout::Outcome;
use activegate_lifecycle::sim::{Fault, Mode};
use activegate_lifecycle::versions::registry::{Registry, RegistryError};
use simkit::rig::*;
use simkit::*;

const NAME: &str = "dynatrace/dynatrace-activegate";
const REPO: &str = "public.ecr.aws/dynatrace/dynatrace-activegate";

#[tokio::test]
async fn tags_are_listed_across_pages_and_behind_the_token_flow() {
    let w = World::new().await;
    for i in 0..1200 {
        w.sim
            .publish_tag(NAME, &format!("1.{}.0.20250101-000000", 100 + i));
    }
    w.sim.set_registry_auth(true);
    let r = Registry::new(w.sim.endpoint(), NAME, None).expect("client");
    let tags = r.tags().await.expect("tags");
    assert_eq!(tags.len(), 1200);
    assert_eq!(tags[1199], "1.1299.0.20250101-000000");
    // Two pages of 1000, plus the first answer's 401 challenge.
    assert_eq!(w.sim.calls().get("Registry"), Some(&3));
    let d = w.sim.publish_tag(NAME, "1.303.10.20250115-101010");
    assert_eq!(
        r.digest("1.303.10.20250115-101010").await.expect("digest"),
        d
    );
    let missing = r.digest("9.9.9").await.expect_err("unknown tag");
    assert!(
        matches!(missing, RegistryError::Http { status: 404, .. }),
        "{missing}"
    );
    w.sim.shutdown().await;
}

#[tokio::test]
async fn a_rate_limited_registry_is_waited_for_then_given_up() {
    let w = World::new().await;
    w.sim.publish_tag(NAME, "1.301.70.20241127-162512");
    w.sim.set_fault(
        "Registry",
        Fault {
            throttle: 1.0,
            ..Fault::default()
        },
    );
    let r = Registry::new(w.sim.endpoint(), NAME, None).expect("client");
    let e = r.tags().await.expect_err("always 429");
    assert!(
        matches!(e, RegistryError::RateLimited { tries: 3, .. }),
        "{e}"
    );
    // Four answers: the first and three more after waiting Retry-After each time.
    assert_eq!(w.sim.calls().get("Registry"), Some(&4));
    w.sim.shutdown().await;
}

/// A one-route HTTP server answering every request the same way; returns its base URL.
fn hostile(response: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        for stream in listener.incoming().take(64) {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(response.as_bytes());
        }
    });
    base
}

#[tokio::test]
async fn hostile_registries_get_clear_errors() {
    let garbage =
        hostile("HTTP/1.1 200 OK\r\ncontent-length: 9\r\nconnection: close\r\n\r\nnot json!");
    let e = Registry::new(&garbage, NAME, None)
        .expect("client")
        .tags()
        .await
        .expect_err("garbage");
    assert!(matches!(e, RegistryError::Json { .. }), "{e}");

    let looping = hostile(
        "HTTP/1.1 302 Found\r\nlocation: /v2/loop\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
    );
    let e = Registry::new(&looping, NAME, None)
        .expect("client")
        .tags()
        .await
        .expect_err("loop");
    assert!(matches!(e, RegistryError::Transport { .. }), "{e}");

    let no_digest = hostile("HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    let e = Registry::new(&no_digest, NAME, None)
        .expect("client")
        .digest("1.0.0")
        .await
        .expect_err("no header");
    assert!(matches!(e, RegistryError::NoDigest { .. }), "{e}");

    // 401 whose realm is itself: the token endpoint answers 401 too.
    let refusing = hostile(
        "HTTP/1.1 401 Unauthorized\r\nwww-authenticate: Bearer realm=\"http://127.0.0.1:9/token\",service=\"x\"\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
    );
    let e = Registry::new(&refusing, NAME, None)
        .expect("client")
        .tags()
        .await
        .expect_err("refused");
    assert!(matches!(e, RegistryError::Auth { .. }), "{e}");

    let no_tags = hostile(
        "HTTP/1.1 200 OK\r\ncontent-length: 15\r\nconnection: close\r\n\r\n{\"name\":\"x\"}   ",
    );
    let e = Registry::new(&no_tags, NAME, None)
        .expect("client")
        .tags()
        .await
        .expect_err("no tags");
    assert!(e.to_string().contains("no `tags` list"), "{e}");
}

/// A rig whose target discovers versions in the simulator's registry.
async fn discovering_rig(extra: &str) -> Rig {
    let rig = Rig::new().await;
    let path = rig.dir.path().join("ag.toml");
    let text = std::fs::read_to_string(&path)
        .expect("config")
        .replace(&format!("image = \"{V1}\"\n"), "");
    let text = format!(
        "{text}\n[target.versions]\nsource = \"registry\"\nrepository = \"{REPO}\"\nregistry_url = \"{}\"\n{extra}",
        rig.w.sim.endpoint()
    );
    std::fs::write(&path, text).expect("write");
    let config = activegate_lifecycle::config::Config::load(&path).expect("config");
    Rig { config, ..rig }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_versions_are_rolled_out_by_digest_and_a_bad_one_is_never_chosen_again() {
    let rig = discovering_rig("").await;
    let v1 = "1.301.70.20241127-162512";
    let v2 = "1.303.10.20250115-101010";
    let bad = "1.305.0.20250301-000000";
    rig.w.image(&format!("{REPO}:{v1}"), Mode::Healthy);
    rig.w.image(&format!("{REPO}:{v2}"), Mode::Healthy);
    rig.w.image(&format!("{REPO}:{bad}"), Mode::NeverHealthy);
    let d1 = rig.w.sim.publish_tag(NAME, v1);
    rig.w.sim.publish_tag(NAME, "latest-garbage");
    let engine = rig.engine().await;
    let Outcome::Verified { to, .. } = engine.reconcile(None).await.expect("first") else {
        panic!("not verified")
    };
    let image = rig.w.image_of(&to).await;
    assert_eq!(
        image,
        Some(format!("{REPO}:{v1}@{d1}")),
        "pinned to the digest"
    );

    rig.w.sim.publish_tag(NAME, v2);
    let plan = engine.plan(None).await.expect("plan");
    assert!(
        plan.versions
            .iter()
            .any(|n| n.starts_with(&format!("chose {v2}"))),
        "{:?}",
        plan.versions
    );
    assert!(matches!(
        engine.reconcile(None).await.expect("v2"),
        Outcome::Verified { .. }
    ));

    rig.w.sim.publish_tag(NAME, bad);
    assert!(matches!(
        engine.reconcile(None).await.expect("bad"),
        Outcome::RolledBack { .. }
    ));
    // Quarantined: discovery passes it over, so V2 stays and nothing is written.
    let before = rig.w.sim.calls();
    assert!(matches!(
        engine.reconcile(None).await.expect("again"),
        Outcome::Unchanged { .. }
    ));
    assert_eq!(
        before.get("RegisterTaskDefinition"),
        rig.w.sim.calls().get("RegisterTaskDefinition")
    );
    let plan = engine.plan(None).await.expect("plan");
    assert!(
        plan.versions
            .iter()
            .any(|n| n.contains(bad) && n.contains("quarantined")),
        "{:?}",
        plan.versions
    );
    rig.w.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_discovery_keeps_the_running_version() {
    let rig = discovering_rig("").await;
    let v1 = "1.301.70.20241127-162512";
    rig.w.image(&format!("{REPO}:{v1}"), Mode::Healthy);
    rig.w.sim.publish_tag(NAME, v1);
    let engine = rig.engine().await;
    assert!(matches!(
        engine.reconcile(None).await.expect("first"),
        Outcome::Verified { .. }
    ));
    rig.w.sim.set_fault(
        "Registry",
        Fault {
            throttle: 1.0,
            ..Fault::default()
        },
    );
    let outcome = tokio::time::timeout(Duration::from_secs(30), engine.reconcile(None))
        .await
        .expect("in time")
        .expect("reconcile");
    assert!(matches!(outcome, Outcome::Unchanged { .. }), "{outcome:?}");
    assert_eq!(engine.discovery_failures(), 1);
    rig.w.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_age_and_constraints_apply() {
    let rig = discovering_rig("constraint = \"1.301.*\"\nmin_age_days = 30\n").await;
    for tag in [
        "1.301.60.20240101-000000",
        "1.301.70.29991231-000000",
        "1.303.10.20250115-101010",
    ] {
        rig.w.image(&format!("{REPO}:{tag}"), Mode::Healthy);
        rig.w.sim.publish_tag(NAME, tag);
    }
    let plan = rig.engine().await.plan(None).await.expect("plan");
    assert!(
        plan.desired_image
            .contains(":1.301.60.20240101-000000@sha256:"),
        "{}",
        plan.desired_image
    );
    assert!(
        plan.versions
            .iter()
            .any(|n| n.contains("1.303.10") && n.contains("outside the constraint")),
        "{:?}",
        plan.versions
    );
    assert!(
        plan.versions
            .iter()
            .any(|n| n.contains("1.301.70") && n.contains("younger than min_age_days")),
        "{:?}",
        plan.versions
    );
    rig.w.sim.shutdown().await;
}

#[tokio::test]
async fn a_tag_list_of_100000_entries_is_refused() {
    let tags: Vec<String> = (0..100_000).map(|i| format!("\"1.{i}.0\"")).collect();
    let body = format!("{{\"name\":\"x\",\"tags\":[{}]}}", tags.join(","));
    let response: &'static str = Box::leak(
        format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_boxed_str(),
    );
    let big = hostile(response);
    let e = Registry::new(&big, NAME, None)
        .expect("client")
        .tags()
        .await
        .expect_err("too many");
    assert!(matches!(e, RegistryError::TooMany { .. }), "{e}");
}

#[tokio::test]
async fn the_dynatrace_api_names_the_latest_version() {
    use activegate_lifecycle::versions::dynatrace::Metainfo;
    let w = World::new().await;
    let m = Metainfo::new(w.sim.endpoint(), "dt0c01.SIMULATED.token".into()).expect("client");
    let e = m.latest().await.expect_err("nothing published");
    assert!(matches!(e, RegistryError::Http { status: 404, .. }), "{e}");
    w.sim.set_latest_gateway_version("1.303.10.20250115-101010");
    assert_eq!(
        m.latest().await.expect("latest"),
        "1.303.10.20250115-101010"
    );
    let anonymous = Metainfo::new(w.sim.endpoint(), String::new()).expect("client");
    let e = anonymous.latest().await.expect_err("no token");
    assert!(matches!(e, RegistryError::Auth { .. }), "{e}");
    assert!(e.to_string().contains("InstallerDownload"), "{e}");
    w.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_with_the_dynatrace_api_source_shows_the_named_version() {
    let rig = Rig::new().await;
    let path = rig.dir.path().join("ag.toml");
    let text = std::fs::read_to_string(&path)
        .expect("config")
        .replace(&format!("image = \"{V1}\"\n"), "");
    let endpoint = rig.w.sim.endpoint().to_owned();
    std::fs::write(
        &path,
        format!("{text}\n[target.versions]\nsource = \"dynatrace-api\"\nenvironment_url = \"{endpoint}\"\ntoken_env = \"AGL_TEST_PAAS\"\nrepository = \"{REPO}\"\nregistry_url = \"{endpoint}\"\n"),
    )
    .expect("write");
    let version = "1.303.10.20250115-101010";
    rig.w.sim.publish_tag(NAME, "1.301.70.20241127-162512");
    let digest = rig.w.sim.publish_tag(NAME, version);
    rig.w.sim.set_latest_gateway_version(version);
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(simkit::binary::BIN)
            .args(["plan", "--config"])
            .arg(&path)
            .env("AWS_ACCESS_KEY_ID", "AKIDSIMULATOR")
            .env("AWS_SECRET_ACCESS_KEY", "not-a-secret")
            .env("AGL_TEST_PAAS", "dt0c01.SIMULATED.paas")
            .env("RUST_LOG", "off")
            .output()
            .expect("plan runs")
    })
    .await
    .expect("join");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&format!("version:       chose {version} ({digest})")),
        "{text}"
    );
    assert!(
        text.contains(&format!("desired image: {REPO}:{version}@{digest}")),
        "{text}"
    );
    assert!(!text.contains("SIMULATED.paas"));
    rig.w.sim.shutdown().await;
}

/// A registry that wants basic credentials: `abc12345` / `dt0c01.SIMULATED.pw`.
fn basic_registry() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        for stream in listener.incoming().take(16) {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 8192];
            let n = s.read(&mut buf).unwrap_or(0);
            let request = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
            // base64("abc12345:dt0c01.SIMULATED.pw"), lower-cased like the request.
            let ok =
                request.contains("authorization: basic ywjjmtizndu6zhqwyzaxllnjtvvmqvrfrc5wdw==");
            let body = "{\"name\":\"x\",\"tags\":[\"1.301.70.20241127-162512\"]}";
            let response = if ok {
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                )
            } else {
                "HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    .to_owned()
            };
            let _ = s.write_all(response.as_bytes());
        }
    });
    base
}

#[tokio::test]
async fn basic_credentials_are_sent_when_configured() {
    let base = basic_registry();
    let creds = Some(("abc12345".to_owned(), "dt0c01.SIMULATED.pw".to_owned()));
    let tags = Registry::new(&base, NAME, creds)
        .expect("client")
        .tags()
        .await
        .expect("with credentials");
    assert_eq!(tags, ["1.301.70.20241127-162512"]);
    let e = Registry::new(&base, NAME, None)
        .expect("client")
        .tags()
        .await
        .expect_err("without");
    assert!(matches!(e, RegistryError::Auth { .. }), "{e}");
    assert!(!e.to_string().contains("SIMULATED.pw"));
}
