//! The monitor's start on the observer's read and its takeover of the downtime tag, against
//! the simulator (which takes the tag writes; the monitor's own probes are not run).

use std::sync::atomic::{AtomicBool, Ordering};

use super::*;
use crate::config::Config;
use crate::daemon::observer::testing::{self, Publisher};
use crate::ecs::{ClientSettings, Clients, ServiceSummary, ServicesByName};
use crate::health::{ProbeSettings, Trust};
use crate::sim::{Sim, SimHandle, SimOptions};

const CONFIG: &str = r#"[[target]]
name = "prod"
region = "us-east-1"
cluster = "observability"
service = "ag"
execution_role_arn = "arn:aws:iam::123456789012:role/exec"

[target.network]
subnets = ["subnet-0123456789abcdef0"]

[target.logs]
group = "/ecs/activegate"

[target.secrets]
tenant_token = "arn:aws:secretsmanager:us-east-1:123456789012:secret:dt/tenant-AbCdEf"
"#;

/// The simulator tags any ECS resource: the cluster stands in for the service (the monitor
/// only tags its ARN), so no task definition and service need be made.
const ARN: &str = "arn:aws:ecs:us-east-1:123456789012:cluster/observability";

struct Setup {
    sim: SimHandle,
    monitor: Monitor,
    publisher: Publisher,
    lease: Arc<AtomicBool>,
}

async fn setup() -> Setup {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sim = Sim::start(SimOptions {
        listen: "127.0.0.1:0".parse().expect("an address"),
        ..SimOptions::default()
    })
    .await
    .expect("the simulator starts");
    sim.create_cluster("observability");
    let mut settings = ClientSettings::new("us-east-1");
    settings.endpoint_url = Some(sim.endpoint().to_owned());
    settings.static_credentials = Some(("AKIDSIMULATOR".into(), "not-a-secret".into()));
    settings.max_attempts = 1;
    let aws = Clients::new().aws(settings).await;
    let prober = Prober::new(ProbeSettings {
        port: 9999,
        path: "/rest/state".into(),
        timeout: Duration::from_secs(1),
        body_match: None,
        trust: Trust::Insecure,
    })
    .expect("a prober");
    let config = Config::parse("ag.toml", CONFIG).expect("valid");
    let target = config.targets[0].clone();
    let (feed, publisher) = testing::feed();
    let lease = Arc::new(AtomicBool::new(false));
    let monitor = Monitor::new(
        aws,
        prober,
        target,
        Arc::new(Board::default()),
        Options::default(),
        None,
        Writes::Switch(lease.clone()),
        Some(feed),
    );
    Setup {
        sim,
        monitor,
        publisher,
        lease,
    }
}

fn today(seconds: f64) -> String {
    format!("{}={seconds:.1}", chrono::Utc::now().format("%Y%m%d"))
}

fn read(downtime: &str) -> ServicesByName {
    let tags = [
        (SINCE_TAG.to_owned(), "2026-01-01T00:00:00Z".to_owned()),
        (TAG.to_owned(), downtime.to_owned()),
    ];
    ServicesByName::from([(
        "ag".to_owned(),
        Some(ServiceSummary {
            arn: ARN.into(),
            status: "ACTIVE".into(),
            desired_count: 2,
            running_count: 2,
            tags: tags.into_iter().collect(),
        }),
    )])
}

fn tag_writes(sim: &SimHandle) -> u64 {
    sim.calls().get("TagResource").copied().unwrap_or(0)
}

#[tokio::test]
async fn a_takeover_continues_from_the_previous_holders_downtime() {
    let Setup {
        sim,
        mut monitor,
        mut publisher,
        lease,
    } = setup().await;
    // Replica A holds the lease and has written 30 s; this monitor starts on the observer's
    // first read (no call of its own) and counts from there.
    publisher.services(Instant::now(), read(&today(30.0)));
    monitor.start(None).await;
    assert_eq!(monitor.service_arn.as_deref(), Some(ARN));
    let now = monitor.options.clock.now();
    assert_eq!(monitor.count.report(now).downtime_seconds, 30.0);
    // It sees 10 s of downtime; without the lease it writes nothing.
    monitor
        .count
        .add_downtime(now - chrono::Duration::seconds(10), now);
    assert_eq!(monitor.count.report(now).downtime_seconds, 40.0);
    monitor.follow_lease();
    monitor.persist().await;
    assert_eq!(tag_writes(&sim), 0, "no write without the lease");
    // A wrote 100 s and died; this replica takes the lease over. Its first persist waits for
    // a read of the tag asked for after the takeover (an older one does not do).
    lease.store(true, Ordering::SeqCst);
    let before = Instant::now() - Duration::from_millis(1);
    publisher.services(before, read(&today(90.0)));
    monitor.follow_lease();
    monitor.follow_feed();
    monitor.persist().await;
    assert_eq!(tag_writes(&sim), 0, "no write before the takeover's read");
    publisher.services(Instant::now(), read(&today(100.0)));
    monitor.follow_feed();
    // After that read it sees 5 s more: A's 100 s and these 5 s, not its own 45 s.
    let now = monitor.options.clock.now();
    monitor
        .count
        .add_downtime(now, now + chrono::Duration::seconds(5));
    monitor.persist().await;
    assert_eq!(tag_writes(&sim), 1, "one write");
    assert_eq!(monitor.count.tag_value(), today(105.0));
    sim.shutdown().await;
}

#[tokio::test]
async fn without_a_read_of_its_service_the_monitor_neither_counts_nor_writes() {
    let Setup {
        sim,
        mut monitor,
        mut publisher,
        lease,
    } = setup().await;
    lease.store(true, Ordering::SeqCst);
    // Not created yet: ECS answered MISSING.
    publisher.services(
        Instant::now(),
        ServicesByName::from([("ag".to_owned(), None)]),
    );
    monitor.start(None).await;
    assert_eq!(monitor.service_arn, None);
    // A read from before the previous monitor's last write is not taken as the first.
    let started = Instant::now();
    monitor.not_before = Some(started);
    publisher.services(started - Duration::from_millis(1), read(&today(7.0)));
    monitor.follow_feed();
    assert_eq!(monitor.service_arn, None);
    publisher.services(Instant::now(), read(&today(7.0)));
    monitor.follow_feed();
    assert_eq!(monitor.service_arn.as_deref(), Some(ARN));
    let now = monitor.options.clock.now();
    assert_eq!(monitor.count.report(now).downtime_seconds, 7.0);
    monitor.follow_lease();
    monitor.persist().await;
    assert_eq!(tag_writes(&sim), 0, "the tag already holds the count");
    sim.shutdown().await;
}

/// An HTTPS server answering 200 to anything on `ip`:9999 (the test prober trusts any
/// certificate), until the returned task is aborted.
fn healthy_at(ip: std::net::IpAddr) -> tokio::task::JoinHandle<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let authority = crate::sim::tls::Authority::new("monitor test").expect("a CA");
    let acceptor = tokio_rustls::TlsAcceptor::from(authority.server_config(ip).expect("a cert"));
    let listener = std::net::TcpListener::bind((ip, 9999)).expect("bind the task's address");
    listener.set_nonblocking(true).expect("non-blocking");
    let listener = tokio::net::TcpListener::from_std(listener).expect("a listener");
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(socket).await else {
                    return;
                };
                let mut buf = [0u8; 1024];
                let _ = tls.read(&mut buf).await;
                let _ = tls
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
                let _ = tls.shutdown().await;
            });
        }
    })
}

#[tokio::test]
async fn tasks_replaced_since_the_last_read_are_read_again_before_downtime_is_counted() {
    let Setup {
        sim,
        mut monitor,
        mut publisher,
        lease: _,
    } = setup().await;
    // Outside the simulators' task range (127.20–127.51): no other test binds these.
    let (old, new) = ("127.7.61.1", "127.7.61.2");
    let server = healthy_at(new.parse().expect("an address"));
    publisher.services(Instant::now(), read(&today(0.0)));
    publisher.tasks(
        Instant::now(),
        crate::ecs::TasksByService::from([(
            "ag".to_owned(),
            vec![crate::ecs::TaskState::running_at("a", old)],
        )]),
    );
    monitor.start(None).await;
    // The observer's read is taken: the monitor knows the old task (nothing answers there
    // any more: a rollout replaced it) and has seen the service healthy before.
    monitor.ips = vec![old.to_owned()];
    monitor.refresh().await;
    assert_eq!(monitor.ips, [old]);
    monitor.ever_healthy = true;
    // A nudge left from the start must not answer the round's request for a fresh read.
    let _ = tokio::time::timeout(Duration::ZERO, publisher.nudged()).await;
    let reader = tokio::spawn(async move {
        publisher.nudged().await;
        publisher.tasks(
            Instant::now(),
            crate::ecs::TasksByService::from([(
                "ag".to_owned(),
                vec![crate::ecs::TaskState::running_at("b", new)],
            )]),
        );
        publisher
    });
    monitor.round().await;
    // The round has ended: had it not asked for a fresh read, nobody ever will.
    let asked = reader.is_finished();
    reader.abort();
    assert!(asked, "the round asked the observer for a fresh read");
    assert_eq!(monitor.ips, [new], "the tasks were read again");
    let now = monitor.options.clock.now();
    assert_eq!(
        monitor.count.report(now).downtime_seconds,
        0.0,
        "the service had a healthy task all along"
    );
    server.abort();
    sim.shutdown().await;
}

/// A TCP listener on `ip`:9999 that accepts and never answers: every probe times out.
fn silent_at(ip: std::net::IpAddr) -> tokio::task::JoinHandle<()> {
    let listener = std::net::TcpListener::bind((ip, 9999)).expect("bind the task's address");
    listener.set_nonblocking(true).expect("non-blocking");
    let listener = tokio::net::TcpListener::from_std(listener).expect("a listener");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    })
}

#[tokio::test]
async fn timeouts_while_the_daemons_event_loop_runs_late_are_not_downtime() {
    let Setup {
        sim,
        mut monitor,
        mut publisher,
        lease: _,
    } = setup().await;
    let task = "127.7.61.3";
    let server = silent_at(task.parse().expect("an address"));
    let tasks = || {
        crate::ecs::TasksByService::from([(
            "ag".to_owned(),
            vec![crate::ecs::TaskState::running_at("c", task)],
        )])
    };
    publisher.services(Instant::now(), read(&today(0.0)));
    publisher.tasks(Instant::now(), tasks());
    monitor.start(None).await;
    // Known already (an empty list would wait for a fresh read nobody answers yet).
    monitor.ips = vec![task.to_owned()];
    monitor.refresh().await;
    assert_eq!(monitor.ips, [task]);
    monitor.ever_healthy = true;
    // The observer answers each request for a fresh read: the same task.
    let reader = tokio::spawn(async move {
        loop {
            publisher.nudged().await;
            publisher.tasks(Instant::now(), tasks());
        }
    });
    // The event loop ran 2 s late: the round's timeouts are the daemon's, not downtime.
    monitor.prober.load().set_lateness(Duration::from_secs(2));
    monitor.round().await;
    let now = monitor.options.clock.now();
    assert_eq!(monitor.count.report(now).downtime_seconds, 0.0);
    // On time, the same timeouts are downtime.
    monitor.prober.load().set_lateness(Duration::ZERO);
    monitor.round().await;
    let now = monitor.options.clock.now();
    assert!(monitor.count.report(now).downtime_seconds > 0.0);
    reader.abort();
    server.abort();
    sim.shutdown().await;
}
