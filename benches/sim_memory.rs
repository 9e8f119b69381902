//! Memory and time of the simulator at scale: 100 services of 2 tasks each,
//! every task a TLS listener, driven over the AWS JSON 1.1 wire protocol.
//! Prints a Markdown table row for README's benchmark table.
//!
//! Run: `cargo bench --bench sim_memory`

use std::time::{Duration, Instant};

use activegate_lifecycle::sim::{Behaviour, Mode, Sim, SimOptions};
use serde_json::{Value, json};

const SERVICES: usize = 100;
const TASKS_PER_SERVICE: u64 = 2;

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

async fn call(http: &reqwest::Client, endpoint: &str, op: &str, body: Value) -> Value {
    let r = http
        .post(endpoint)
        .header(
            "x-amz-target",
            format!("AmazonEC2ContainerServiceV20141113.{op}"),
        )
        .header("content-type", "application/x-amz-json-1.1")
        .body(body.to_string())
        .send()
        .await
        .expect("the simulator answers");
    let status = r.status();
    let v: Value = r.json().await.expect("JSON");
    assert!(status.is_success(), "{op}: {v}");
    v
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rss_before = status_kib("VmRSS:");
    let sim = Sim::start(SimOptions {
        listen: "127.0.0.1:0".parse().expect("address"),
        speed: 100.0,
        ..SimOptions::default()
    })
    .await
    .expect("the simulator starts");
    let image = "public.ecr.aws/dynatrace/dynatrace-activegate:1.301.70.20241127-162512";
    sim.set_image(
        image,
        Behaviour {
            start_seconds: Some(30.0),
            ..Behaviour::of(Mode::Healthy)
        },
    );
    let http = reqwest::Client::new();
    let ep = sim.endpoint().to_owned();
    call(&http, &ep, "CreateCluster", json!({"clusterName": "bench"})).await;
    call(
        &http,
        &ep,
        "RegisterTaskDefinition",
        json!({
            "family": "activegate", "networkMode": "awsvpc", "requiresCompatibilities": ["FARGATE"],
            "cpu": "256", "memory": "512",
            "containerDefinitions": [{"name": "activegate", "image": image, "essential": true,
                "portMappings": [{"containerPort": 9999, "protocol": "tcp"}],
                "healthCheck": {"command": ["CMD-SHELL", "curl -fsk https://127.0.0.1:9999/rest/state"], "interval": 10, "timeout": 2, "retries": 3, "startPeriod": 60}}]
        }),
    )
    .await;
    let started = Instant::now();
    for i in 0..SERVICES {
        call(
            &http,
            &ep,
            "CreateService",
            json!({
                "cluster": "bench", "serviceName": format!("ag-{i:03}"), "taskDefinition": "activegate",
                "desiredCount": TASKS_PER_SERVICE, "launchType": "FARGATE",
                "networkConfiguration": {"awsvpcConfiguration": {"subnets": ["subnet-0123456789abcdef0"]}},
                "deploymentConfiguration": {"minimumHealthyPercent": 100, "maximumPercent": 200,
                    "deploymentCircuitBreaker": {"enable": true, "rollback": true}}
            }),
        )
        .await;
    }
    let names: Vec<String> = (0..SERVICES).map(|i| format!("ag-{i:03}")).collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let mut completed = 0;
        for chunk in names.chunks(10) {
            let v = call(
                &http,
                &ep,
                "DescribeServices",
                json!({"cluster": "bench", "services": chunk}),
            )
            .await;
            completed += v["services"]
                .as_array()
                .map(|s| {
                    s.iter()
                        .filter(|s| {
                            s["deployments"][0]["rolloutState"] == "COMPLETED"
                                && s["runningCount"] == TASKS_PER_SERVICE
                        })
                        .count()
                })
                .unwrap_or(0);
        }
        if completed == SERVICES {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {completed} of {SERVICES} services completed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let converged = started.elapsed();

    // Probe every task once over HTTPS, as the daemon would.
    let ca = reqwest::Certificate::from_pem(sim.ca_pem().as_bytes()).expect("CA");
    let https = reqwest::Client::builder()
        .tls_certs_only([ca])
        .build()
        .expect("HTTPS client");
    let arns = call(
        &http,
        &ep,
        "ListTasks",
        json!({"cluster": "bench", "maxResults": 100}),
    )
    .await;
    let mut all: Vec<Value> = arns["taskArns"].as_array().cloned().unwrap_or_default();
    let mut token = arns["nextToken"].clone();
    while let Some(t) = token.as_str().map(str::to_owned) {
        let page = call(
            &http,
            &ep,
            "ListTasks",
            json!({"cluster": "bench", "maxResults": 100, "nextToken": t}),
        )
        .await;
        all.extend(page["taskArns"].as_array().cloned().unwrap_or_default());
        token = page["nextToken"].clone();
    }
    assert_eq!(all.len(), SERVICES * TASKS_PER_SERVICE as usize);
    let mut healthy = 0;
    for chunk in all.chunks(100) {
        let tasks = call(
            &http,
            &ep,
            "DescribeTasks",
            json!({"cluster": "bench", "tasks": chunk}),
        )
        .await;
        for t in tasks["tasks"].as_array().cloned().unwrap_or_default() {
            let ip = t["containers"][0]["networkInterfaces"][0]["privateIpv4Address"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let r = https
                .get(format!("https://{ip}:9999/rest/health"))
                .send()
                .await
                .expect("probe");
            healthy += usize::from(r.status() == 200);
        }
    }
    assert_eq!(healthy, all.len());
    // Let the steady state settle (health checks, idle listeners), then measure.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss = status_kib("VmRSS:");
    let peak = status_kib("VmHWM:");
    let calls: u64 = sim.calls().values().sum();
    println!(
        "| services × tasks | converged in (real, speed 100) | RSS after probing every task | peak RSS | RSS before start | AWS calls |"
    );
    println!("|---|---|---|---|---|---|");
    println!(
        "| {SERVICES} × {TASKS_PER_SERVICE} | {:.2} s | {:.1} MiB | {:.1} MiB | {:.1} MiB | {calls} |",
        converged.as_secs_f64(),
        rss as f64 / 1024.0,
        peak as f64 / 1024.0,
        rss_before as f64 / 1024.0,
    );
    sim.shutdown().await;
}
