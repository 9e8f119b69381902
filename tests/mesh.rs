//! The Consul service mesh: the destination written through Consul's HTTP API against a small
//! in-test stand-in that enforces check-and-set and ACL tokens as Consul does (no Consul binary
//! runs here), with the terminating gateway's Envoy admin `/clusters` derived from what was
//! written; and a rollout in the simulator followed by the destination update.

mod simkit;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use activegate_lifecycle::daemon::{self, Signal, board::Board};
use activegate_lifecycle::mesh::consul::{Client, ConsulError, Settings, Written};
use activegate_lifecycle::mesh::{AddressSource, Source, Spec};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode};
use serde_json::{Value, json};
use simkit::rig::*;
use simkit::*;

const TOKEN: &str = "consul-acl-token-never-print-me";
const TOKEN_ENV: &str = "AGL_TEST_CONSUL_TOKEN";

/// Consul's config-entry API as far as the daemon uses it, plus an Envoy admin `/clusters`.
#[derive(Default)]
struct Stand {
    entries: Mutex<BTreeMap<(String, String), Value>>,
    index: AtomicU64,
    /// An operator edits the entry right after each of the next N reads.
    interfere: AtomicU64,
    /// PUT answers: (cas, accepted).
    writes: Mutex<Vec<(Option<u64>, bool)>>,
    /// Answer every PUT with this status instead (an outage).
    fail_puts: Mutex<Option<u16>>,
    /// Answer every PUT with this body (a hostile or broken server).
    put_body: Mutex<Option<String>>,
    /// Addresses the gateway cannot reach.
    unreachable: Mutex<Vec<String>>,
}

impl Stand {
    fn entry(&self, kind: &str, name: &str) -> Option<Value> {
        self.entries
            .lock()
            .expect("lock")
            .get(&(kind.to_owned(), name.to_owned()))
            .cloned()
    }

    fn next_index(&self) -> u64 {
        self.index.fetch_add(1, Ordering::SeqCst) + 10
    }

    fn answer(
        &self,
        method: &str,
        path: &str,
        query: &str,
        token: Option<&str>,
        body: &[u8],
    ) -> (u16, String) {
        if path == "/clusters" {
            return (200, self.clusters().to_string());
        }
        if token != Some(TOKEN) {
            return (403, "Permission denied".into());
        }
        let param = |k: &str| {
            query
                .split('&')
                .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
                .map(str::to_owned)
        };
        match (method, path.strip_prefix("/v1/config")) {
            ("GET", Some(rest)) => {
                let mut parts = rest.trim_start_matches('/').splitn(2, '/');
                let (kind, name) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                let Some(found) = self.entry(kind, name) else {
                    return (
                        404,
                        format!("Config entry not found for {kind:?} / {name:?}"),
                    );
                };
                if self.interfere.load(Ordering::SeqCst) > 0 {
                    self.interfere.fetch_sub(1, Ordering::SeqCst);
                    let mut edited = found.clone();
                    edited["Meta"] = json!({ "edited-by": "operator" });
                    edited["ModifyIndex"] = json!(self.next_index());
                    self.entries
                        .lock()
                        .expect("lock")
                        .insert((kind.into(), name.into()), edited);
                }
                (200, found.to_string())
            }
            ("PUT", Some("")) => {
                if let Some(s) = *self.fail_puts.lock().expect("lock") {
                    return (s, "rpc error: no cluster leader".into());
                }
                if let Some(b) = self.put_body.lock().expect("lock").clone() {
                    return (200, b);
                }
                let Ok(mut entry) = serde_json::from_slice::<Value>(body) else {
                    return (400, "Request decode failed".into());
                };
                let key = (
                    entry["Kind"].as_str().unwrap_or("").to_owned(),
                    entry["Name"].as_str().unwrap_or("").to_owned(),
                );
                let cas: Option<u64> = param("cas").and_then(|c| c.parse().ok());
                if cas.is_none() {
                    // Consul would accept it; our client must never write without check-and-set.
                    return (400, "this stand-in takes only check-and-set writes".into());
                }
                let mut entries = self.entries.lock().expect("lock");
                let current = entries.get(&key);
                let accepted = match (cas, current) {
                    (None, _) | (Some(0), None) => true,
                    (Some(0), Some(_)) | (Some(_), None) => false,
                    (Some(c), Some(cur)) => cur["ModifyIndex"].as_u64() == Some(c),
                };
                self.writes.lock().expect("lock").push((cas, accepted));
                if accepted {
                    let created = current
                        .and_then(|c| c["CreateIndex"].as_u64())
                        .unwrap_or_else(|| self.next_index());
                    entry["CreateIndex"] = json!(created);
                    entry["ModifyIndex"] = json!(self.next_index());
                    entries.insert(key, entry);
                }
                (200, accepted.to_string())
            }
            _ => (404, "not found".into()),
        }
    }

    /// Envoy's view: one cluster per destination address of every service-defaults entry.
    fn clusters(&self) -> Value {
        let unreachable = self.unreachable.lock().expect("lock").clone();
        let mut statuses = Vec::new();
        for ((kind, name), e) in self.entries.lock().expect("lock").iter() {
            if kind != "service-defaults" {
                continue;
            }
            for a in e["Destination"]["Addresses"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let a = a.as_str().unwrap_or_default();
                let health = if unreachable.iter().any(|u| u == a) {
                    "UNHEALTHY"
                } else {
                    "HEALTHY"
                };
                statuses.push(json!({
                    "name": format!("destination.{}.{name}.default.dc1.internal.9d891a97-6f0c-61bb-40c4-eb8fffa28743.consul", a.replace(['.', ':'], "-")),
                    "host_statuses": [{
                        "address": { "socket_address": { "address": a, "port_value": e["Destination"]["Port"] } },
                        "health_status": { "eds_health_status": health }
                    }]
                }));
            }
        }
        json!({ "cluster_statuses": statuses })
    }

    fn puts(&self) -> Vec<(Option<u64>, bool)> {
        self.writes.lock().expect("lock").clone()
    }
}

/// Serves the stand-in on loopback; returns its base URL.
async fn serve(stand: Arc<Stand>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                continue;
            };
            let stand = stand.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                        let stand = stand.clone();
                        async move {
                            let method = req.method().as_str().to_owned();
                            let path = req.uri().path().to_owned();
                            let query = req.uri().query().unwrap_or("").to_owned();
                            let token = req
                                .headers()
                                .get("x-consul-token")
                                .and_then(|v| v.to_str().ok())
                                .map(str::to_owned);
                            let body = req
                                .into_body()
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let (status, text) =
                                stand.answer(&method, &path, &query, token.as_deref(), &body);
                            Ok::<_, Infallible>(
                                Response::builder()
                                    .status(StatusCode::from_u16(status).expect("status"))
                                    .body(Full::new(Bytes::from(text)))
                                    .expect("response"),
                            )
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(socket), service)
                    .await;
            });
        }
    });
    format!("http://{addr}")
}

fn spec(url: &str) -> Spec {
    Spec {
        service: "dynatrace-activegate".into(),
        namespace: None,
        gateway: "terminating-gateway".into(),
        addresses: AddressSource::Tasks,
        port: 9999,
        sources: vec![Source {
            name: "frontend".into(),
            namespace: None,
        }],
        exclude_cidrs: Vec::new(),
        consul: Some(Settings {
            address: url.into(),
            token_env: TOKEN_ENV.into(),
            datacenter: None,
            ca_bundle: None,
        }),
        envoy_admin: Some(url.into()),
    }
}

fn client(url: &str) -> Client {
    // SAFETY of the test: every test in this file sets the same value.
    unsafe { std::env::set_var(TOKEN_ENV, TOKEN) };
    Client::new(
        spec(url).consul.as_ref().expect("consul"),
        None,
        Duration::from_secs(5),
    )
    .expect("client")
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test]
async fn the_destination_is_created_updated_and_left_alone_when_unchanged() {
    let stand = Arc::new(Stand::default());
    let url = serve(stand.clone()).await;
    let (c, s) = (client(&url), spec(&url));

    let w = c
        .write_destination(&s, &strings(&["10.0.1.5", "10.0.2.9"]))
        .await
        .expect("create");
    assert_eq!(w, Written::Created);
    assert_eq!(stand.puts(), [(Some(0), true)], "created with cas=0");
    let e = stand
        .entry("service-defaults", "dynatrace-activegate")
        .expect("stored");
    assert_eq!(e["Protocol"], "tcp");
    assert_eq!(
        e["Destination"],
        json!({ "Addresses": ["10.0.1.5", "10.0.2.9"], "Port": 9999 })
    );

    // The same addresses in another order: no write.
    let w = c
        .write_destination(&s, &strings(&["10.0.2.9", "10.0.1.5"]))
        .await
        .expect("same");
    assert_eq!(w, Written::Unchanged);
    assert_eq!(stand.puts().len(), 1);

    // New tasks: written with the index just read.
    let (index, created) = (
        e["ModifyIndex"].as_u64().expect("index"),
        e["CreateIndex"].as_u64().expect("create index"),
    );
    let w = c
        .write_destination(&s, &strings(&["10.0.3.3"]))
        .await
        .expect("update");
    assert_eq!(
        w,
        Written::Updated {
            previous: strings(&["10.0.1.5", "10.0.2.9"])
        }
    );
    assert_eq!(stand.puts().last(), Some(&(Some(index), true)));
    let e = stand
        .entry("service-defaults", "dynatrace-activegate")
        .expect("stored");
    assert_eq!(e["Destination"]["Addresses"], json!(["10.0.3.3"]));
    assert_eq!(
        e["CreateIndex"].as_u64(),
        Some(created),
        "the same entry, updated"
    );
}

#[tokio::test]
async fn a_concurrent_edit_is_not_lost_and_endless_contention_gives_up_cleanly() {
    let stand = Arc::new(Stand::default());
    let url = serve(stand.clone()).await;
    let (c, s) = (client(&url), spec(&url));
    c.write_destination(&s, &strings(&["10.0.1.5"]))
        .await
        .expect("create");

    // An operator edits the entry between our read and our write: our write is refused,
    // we read again and keep their edit.
    stand.interfere.store(1, Ordering::SeqCst);
    let w = c
        .write_destination(&s, &strings(&["10.0.4.4"]))
        .await
        .expect("update");
    assert!(matches!(w, Written::Updated { .. }), "{w:?}");
    let puts = stand.puts();
    assert_eq!(
        &puts[puts.len() - 2..]
            .iter()
            .map(|p| p.1)
            .collect::<Vec<_>>(),
        &[false, true]
    );
    let e = stand
        .entry("service-defaults", "dynatrace-activegate")
        .expect("stored");
    assert_eq!(e["Meta"], json!({ "edited-by": "operator" }));
    assert_eq!(e["Destination"]["Addresses"], json!(["10.0.4.4"]));

    // Someone keeps editing: we stop, overwrite nothing, and say so.
    stand.interfere.store(100, Ordering::SeqCst);
    let before = stand.puts().len();
    let err = c
        .write_destination(&s, &strings(&["10.0.5.5"]))
        .await
        .expect_err("contended");
    assert!(
        matches!(err, ConsulError::Contended { attempts: 5 }),
        "{err}"
    );
    assert_eq!(stand.puts().len() - before, 5);
    assert!(stand.puts()[before..].iter().all(|p| !p.1));
    let e = stand
        .entry("service-defaults", "dynatrace-activegate")
        .expect("stored");
    assert_eq!(e["Destination"]["Addresses"], json!(["10.0.4.4"]));
}

#[tokio::test]
async fn consul_errors_say_what_went_wrong_and_never_show_the_token() {
    let stand = Arc::new(Stand::default());
    let url = serve(stand.clone()).await;
    let s = spec(&url);
    let good = client(&url);

    // A token Consul refuses.
    let settings = Settings {
        address: url.clone(),
        token_env: "AGL_TEST_CONSUL_TOKEN_UNSET".into(),
        datacenter: Some("dc1".into()),
        ca_bundle: None,
    };
    let anonymous = Client::new(&settings, None, Duration::from_secs(5)).expect("client");
    let err = anonymous
        .write_destination(&s, &strings(&["10.0.1.5"]))
        .await
        .expect_err("403");
    let text = err.to_string();
    assert!(matches!(err, ConsulError::Forbidden { .. }), "{text}");
    assert!(
        text.contains("AGL_TEST_CONSUL_TOKEN_UNSET") && text.contains("service:write"),
        "{text}"
    );
    assert!(
        text.contains("dc=dc1"),
        "the datacenter is asked for: {text}"
    );

    // An outage.
    *stand.fail_puts.lock().expect("lock") = Some(500);
    let err = good
        .write_destination(&s, &strings(&["10.0.1.5"]))
        .await
        .expect_err("500");
    assert!(
        err.to_string()
            .contains("HTTP 500: rpc error: no cluster leader"),
        "{err}"
    );
    assert!(!err.to_string().contains(TOKEN));
    *stand.fail_puts.lock().expect("lock") = None;

    // An answer that is neither true nor false.
    *stand.put_body.lock().expect("lock") = Some("<html>proxy error</html>".into());
    let err = good
        .write_destination(&s, &strings(&["10.0.1.5"]))
        .await
        .expect_err("malformed");
    assert!(matches!(err, ConsulError::Malformed { .. }), "{err}");
    assert!(
        err.to_string().contains("expected `true` or `false`"),
        "{err}"
    );
}

fn mesh_config(rig: &Rig, url: &str) {
    let path = rig.dir.path().join("ag.toml");
    let text = std::fs::read_to_string(&path).expect("config");
    let text = format!(
        "{text}\n[target.mesh]\nservice = \"dynatrace-activegate\"\nsources = [{{ name = \"frontend\" }}]\nconsul_address = \"{url}\"\ntoken_env = \"{TOKEN_ENV}\"\nenvoy_admin = \"{url}\"\n"
    );
    std::fs::write(&path, text).expect("write");
}

async fn running_ips(rig: &Rig) -> Vec<String> {
    let mut ips: Vec<String> = rig
        .w
        .tasks(SERVICE, false)
        .await
        .iter()
        .filter(|t| t.last_status() == Some("RUNNING"))
        .flat_map(|t| t.attachments().to_vec())
        .flat_map(|a| a.details().to_vec())
        .filter(|d| d.name() == Some("privateIPv4Address"))
        .filter_map(|d| d.value().map(str::to_owned))
        .collect();
    ips.sort();
    ips
}

fn destination(stand: &Stand) -> Vec<String> {
    let mut v: Vec<String> = stand
        .entry("service-defaults", "dynatrace-activegate")
        .map(|e| {
            e["Destination"]["Addresses"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| a.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_each_rollout_the_destination_names_the_new_tasks() {
    let stand = Arc::new(Stand::default());
    let url = serve(stand.clone()).await;
    let _ = client(&url); // sets the token variable
    let rig = Rig::new().await;
    mesh_config(&rig, &url);
    let path = rig.dir.path().join("ag.toml");
    let d = rig.daemon();
    let (board, signals) = (d.board.clone(), d.signals.clone());
    let mesh_of = |b: &Board| {
        b.snapshot()
            .targets
            .get("prod")
            .and_then(|t| t.mesh.clone())
    };

    // The first reconcile creates the service; the destination then names its tasks, and the
    // gateway shows them HEALTHY.
    let first = until(Duration::from_secs(40), || async {
        let m = mesh_of(&board)?;
        (m.gateway_healthy == Some(true)).then_some(m)
    })
    .await;
    let ips = running_ips(&rig).await;
    assert_eq!(ips.len(), 2);
    assert_eq!(first.destination, ips);
    assert_eq!(destination(&stand), ips);
    assert_eq!(first.gateway.as_deref(), Some("2/2 HEALTHY"));

    // A new version: once verified, the destination names the new tasks only.
    let text = std::fs::read_to_string(&path)
        .expect("config")
        .replace(V1, V2);
    std::fs::write(&path, text).expect("write");
    signals.send(Signal::Reload).await.expect("send");
    let verified = until(Duration::from_secs(40), || async {
        let t = board.snapshot().targets.get("prod")?.clone();
        (t.outcomes.get("verified").copied() == Some(2)).then_some(t)
    })
    .await;
    let new_ips = until(Duration::from_secs(20), || async {
        let ips = running_ips(&rig).await;
        (ips.len() == 2 && destination(&stand) == ips).then_some(ips)
    })
    .await;
    assert!(
        new_ips.iter().all(|ip| !ips.contains(ip)),
        "new tasks, new addresses: {ips:?} → {new_ips:?}"
    );
    assert!(
        verified
            .revision
            .as_deref()
            .is_some_and(|r| r.ends_with(":2"))
    );
    let m = until(Duration::from_secs(20), || async {
        let m = mesh_of(&board)?;
        (m.destination == new_ips && m.gateway_healthy == Some(true)).then_some(m)
    })
    .await;
    assert!(m.updates >= 2, "{m:?}");
    assert_eq!(m.failures, 0);
    assert_eq!(m.gateway.as_deref(), Some("2/2 HEALTHY"));
    // Every write was a check-and-set the stand-in accepted or refused; the token never leaks.
    assert!(
        !serde_json::to_string(&board.snapshot())
            .expect("JSON")
            .contains(TOKEN)
    );
    let metrics = board.metrics();
    let updates: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("activegate_lifecycle_mesh_updates_total{target=\"prod\"} "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no mesh_updates_total: {metrics}"));
    assert!(updates >= 2, "{metrics}");

    // Consul down: the next rollout still verifies; the failure is reported, and the update
    // succeeds on the next reconcile once Consul is back.
    *stand.fail_puts.lock().expect("lock") = Some(500);
    let text = std::fs::read_to_string(&path)
        .expect("config")
        .replace(V2, V1);
    std::fs::write(&path, text).expect("write");
    signals.send(Signal::Reload).await.expect("send");
    let failed = until(Duration::from_secs(40), || async {
        let t = board.snapshot().targets.get("prod")?.clone();
        let m = t.mesh.clone()?;
        (t.outcomes.get("verified").copied() == Some(3) && m.failures > 0).then_some(t)
    })
    .await;
    assert!(
        failed
            .mesh
            .as_ref()
            .and_then(|m| m.last_error.as_deref())
            .is_some_and(|e| e.contains("HTTP 500")),
        "{failed:?}"
    );
    assert_eq!(
        failed.last_outcome.as_deref(),
        Some("verified"),
        "a mesh failure never undoes a rollout"
    );
    *stand.fail_puts.lock().expect("lock") = None;
    assert!(board.trigger("prod", daemon::board::Trigger::Manual));
    let back = until(Duration::from_secs(40), || async {
        let ips = running_ips(&rig).await;
        (ips.len() == 2 && destination(&stand) == ips).then_some(ips)
    })
    .await;
    assert!(back.iter().all(|ip| !new_ips.contains(ip)));
    d.stop().await;
    rig.w.sim.shutdown().await;
}

/// Without a stable name, `mesh` asks ECS for the tasks' addresses, and says they move.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mesh_command_names_the_running_tasks_and_warns_that_they_move() {
    let rig = Rig::new().await;
    let engine = rig.engine().await;
    let outcome = engine.reconcile(None).await.expect("reconcile");
    assert_eq!(outcome.label(), "verified");
    let path = rig.dir.path().join("ag.toml");
    let text = std::fs::read_to_string(&path).expect("config");
    std::fs::write(
        &path,
        format!("{text}\n[target.mesh]\nsources = [{{ name = \"frontend\" }}]\n"),
    )
    .expect("write");
    let ips = running_ips(&rig).await;
    assert_eq!(ips.len(), 2);
    let mesh = |extra: &[&str]| {
        std::process::Command::new(simkit::binary::BIN)
            .args(["mesh", "--config"])
            .arg(&path)
            .args(extra)
            .env("AWS_ACCESS_KEY_ID", "AKIDSIMULATOR")
            .env("AWS_SECRET_ACCESS_KEY", "not-a-secret")
            .env("RUST_LOG", "warn")
            .output()
            .expect("mesh runs")
    };
    let o = mesh(&["--format", "consul"]);
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(o.status.success(), "{err}");
    let first: Value = serde_json::Deserializer::from_str(&out)
        .into_iter::<Value>()
        .next()
        .expect("an entry")
        .expect("JSON");
    assert_eq!(first["Kind"], "service-defaults");
    assert_eq!(first["Name"], SERVICE, "the ECS service name by default");
    assert_eq!(first["Destination"]["Addresses"], json!(ips));
    assert_eq!(first["Destination"]["Port"], 9999);
    assert!(err.contains("change at every rollout"), "{err}");

    let o = mesh(&["--exclusions"]);
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(o.status.success(), "{err}");
    for ip in &ips {
        assert!(out.contains(&format!("{ip}/32")), "{out}");
    }
    assert!(out.contains("SECURITY"), "{out}");
    assert!(err.contains("change at every rollout"), "{err}");
    rig.w.sim.shutdown().await;
}

/// Consul over HTTPS with a private CA (`mesh.ca_bundle`): the simulator's ActiveGate tasks serve
/// TLS with the simulator's CA, which stands in for Consul's. The handshake succeeds with the
/// bundle (whatever the task then answers) and fails without it; a file that is no PEM is named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consul_over_https_trusts_the_configured_ca() {
    let rig = Rig::new().await;
    rig.started().await;
    let ip = running_ips(&rig).await.pop().expect("a task");
    let ca = rig.dir.path().join("ca.pem");
    let settings = |ca_bundle: Option<std::path::PathBuf>| Settings {
        address: format!("https://{ip}:9999"),
        token_env: TOKEN_ENV.into(),
        datacenter: None,
        ca_bundle,
    };
    let trusted =
        Client::new(&settings(Some(ca.clone())), None, Duration::from_secs(5)).expect("client");
    let answer = trusted
        .get("service-defaults", "dynatrace-activegate")
        .await;
    assert!(
        !matches!(answer, Err(ConsulError::Transport { .. })),
        "TLS with the CA bundle: {answer:?}"
    );
    let untrusted = Client::new(&settings(None), None, Duration::from_secs(5)).expect("client");
    let err = untrusted
        .get("service-defaults", "dynatrace-activegate")
        .await
        .expect_err("an unknown CA");
    assert!(matches!(err, ConsulError::Transport { .. }), "{err}");
    let not_pem = rig.dir.path().join("ag.toml");
    let err = Client::new(&settings(Some(not_pem)), None, Duration::from_secs(5))
        .err()
        .expect("not a CA bundle");
    assert!(
        err.to_string()
            .contains("ag.toml: cannot use it as Consul's CA bundle"),
        "{err}"
    );
    rig.w.sim.shutdown().await;
}
