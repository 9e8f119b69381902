//! Tasks: ListTasks, DescribeTasks, StopTask.

use serde_json::{Value, json};

use super::{cluster, page, service_not_found};
use crate::sim::api::{ApiError, ApiResult, Request, tags_json};
use crate::sim::state::{State, Task, TaskStatus};

pub(super) fn list_tasks(req: Request, st: &mut State) -> ApiResult {
    let c = cluster(st, req.opt_str("cluster")?)?.arn.clone();
    let service = req
        .opt_str("serviceName")?
        .map(|s| s.rsplit('/').next().unwrap_or(s).to_owned());
    if let Some(s) = &service {
        let cname = State::cluster_name(req.opt_str("cluster")?);
        if !st.services.contains_key(&(cname, s.clone())) {
            return Err(service_not_found());
        }
    }
    let want_stopped = match req.opt_str("desiredStatus")?.unwrap_or("RUNNING") {
        "RUNNING" | "PENDING" => false,
        "STOPPED" => true,
        other => return Err(ApiError::invalid(format!("Invalid desiredStatus: {other}"))),
    };
    let family = req.opt_str("family")?;
    let started_by = req.opt_str("startedBy")?;
    let mut tasks: Vec<&Task> = st
        .tasks
        .values()
        .filter(|t| t.cluster_arn == c)
        .filter(|t| t.desired_running != want_stopped)
        .filter(|t| {
            service
                .as_ref()
                .is_none_or(|s| t.service.as_ref().is_some_and(|(n, _)| n == s))
        })
        .filter(|t| {
            family.is_none_or(|f| t.task_definition.contains(&format!("task-definition/{f}:")))
        })
        .filter(|t| started_by.is_none_or(|b| t.service.as_ref().is_some_and(|(_, d)| d == b)))
        .collect();
    tasks.sort_by(|a, b| a.created_at.total_cmp(&b.created_at).then(a.id.cmp(&b.id)));
    page(
        &req,
        tasks.into_iter().map(|t| t.arn.clone()).collect(),
        "taskArns",
        100,
    )
}

pub fn task_json(st: &State, t: &Task, with_tags: bool) -> Value {
    let td = st.find_task_definition(&t.task_definition);
    let attachment_id = format!("{}-eni", &t.id[..8]);
    let running = t.status == TaskStatus::Running;
    let containers: Vec<Value> = td
        .map(|td| td.containers())
        .unwrap_or_default()
        .into_iter()
        .map(|c| {
            let name = c.get("name").and_then(Value::as_str).unwrap_or_default();
            let essential = c.get("essential").and_then(Value::as_bool).unwrap_or(true);
            let last = if !essential && t.status >= TaskStatus::Running {
                "STOPPED"
            } else {
                t.status.as_str()
            };
            let mut v = json!({
                "containerArn": st.arn(&format!("container/{}/{}/{}", t.cluster_arn.rsplit('/').next().unwrap_or(""), t.id, name)),
                "taskArn": t.arn,
                "name": name,
                "image": c.get("image").cloned().unwrap_or(json!("")),
                "lastStatus": last,
                "networkInterfaces": [{"attachmentId": attachment_id, "privateIpv4Address": t.ip.to_string()}],
                "healthStatus": if essential { t.health.as_str() } else { "UNKNOWN" },
                "cpu": "0",
            });
            if !essential && t.status >= TaskStatus::Running {
                v["exitCode"] = json!(0);
            } else if let Some(code) = t.exit_code.filter(|_| t.status == TaskStatus::Stopped) {
                v["exitCode"] = json!(code);
                if let Some(r) = &t.stopped_reason {
                    v["reason"] = json!(r);
                }
            }
            v
        })
        .collect();
    let mut v = json!({
        "attachments": [{
            "id": attachment_id,
            "type": "ElasticNetworkInterface",
            "status": if t.status == TaskStatus::Stopped { "DELETED" } else if running { "ATTACHED" } else { "PRECREATED" },
            "details": [
                {"name": "subnetId", "value": t.subnet},
                {"name": "networkInterfaceId", "value": format!("eni-{}", &t.id[..17])},
                {"name": "macAddress", "value": "02:00:00:00:00:01"},
                {"name": "privateDnsName", "value": format!("ip-{}.ec2.internal", t.ip.to_string().replace('.', "-"))},
                {"name": "privateIPv4Address", "value": t.ip.to_string()},
            ],
        }],
        "availabilityZone": format!("{}a", st.region),
        "clusterArn": t.cluster_arn,
        "connectivity": "CONNECTED",
        "containers": containers,
        "cpu": t.cpu,
        "memory": t.memory,
        "createdAt": t.created_at,
        "desiredStatus": if t.desired_running { "RUNNING" } else { "STOPPED" },
        "healthStatus": t.health.as_str(),
        "lastStatus": t.status.as_str(),
        "launchType": "FARGATE",
        "platformVersion": "1.4.0",
        "platformFamily": "Linux",
        "taskArn": t.arn,
        "taskDefinitionArn": t.task_definition,
        "version": 1,
        "overrides": {"containerOverrides": [], "inferenceAcceleratorOverrides": []},
        "ephemeralStorage": {"sizeInGiB": 20},
    });
    if let Some((service, deployment)) = &t.service {
        v["group"] = json!(format!("service:{service}"));
        v["startedBy"] = json!(deployment);
    }
    for (member, at) in [
        ("pullStartedAt", t.pull_started_at),
        ("pullStoppedAt", t.pull_stopped_at),
        ("startedAt", t.started_at),
        ("stoppingAt", t.stopping_at),
        ("stoppedAt", t.stopped_at),
    ] {
        if let Some(at) = at {
            v[member] = json!(at);
        }
    }
    if let Some(r) = &t.stopped_reason {
        v["stoppedReason"] = json!(r);
    }
    if let Some(c) = t.stop_code {
        v["stopCode"] = json!(c);
    }
    if with_tags {
        v["tags"] = tags_json(&t.tags);
    }
    v
}

fn find_task<'a>(st: &'a State, cluster_arn: &str, reference: &str) -> Option<&'a Task> {
    let id = reference.rsplit('/').next().unwrap_or(reference);
    st.tasks.get(id).filter(|t| t.cluster_arn == cluster_arn)
}

pub(super) fn describe_tasks(req: Request, st: &mut State) -> ApiResult {
    let c = cluster(st, req.opt_str("cluster")?)?.arn.clone();
    let refs = req
        .opt_strings("tasks")?
        .ok_or_else(|| Request::missing("tasks"))?;
    if refs.len() > 100 {
        return Err(ApiError::invalid("tasks can have at most 100 items"));
    }
    let with_tags = req
        .opt_strings("include")?
        .unwrap_or_default()
        .iter()
        .any(|i| i == "TAGS");
    let mut tasks = Vec::new();
    let mut failures = Vec::new();
    for r in refs {
        match find_task(st, &c, &r) {
            Some(t) => tasks.push(task_json(st, t, with_tags)),
            None => failures.push(json!({"arn": r, "reason": "MISSING"})),
        }
    }
    Ok(json!({ "tasks": tasks, "failures": failures }))
}

pub(super) fn stop_task(req: Request, st: &mut State, now: f64) -> ApiResult {
    let c = cluster(st, req.opt_str("cluster")?)?.arn.clone();
    let reference = req.str("task")?.to_owned();
    let reason = req
        .opt_str("reason")?
        .unwrap_or("Task stopped by user")
        .to_owned();
    let id = find_task(st, &c, &reference)
        .map(|t| t.id.clone())
        .ok_or_else(|| ApiError::invalid("The referenced task was not found."))?;
    crate::sim::engine::begin_stop(st, &id, now, &reason, "UserInitiated", None);
    let t = st.tasks.get(&id).expect("exists");
    Ok(json!({ "task": task_json(st, t, false) }))
}
