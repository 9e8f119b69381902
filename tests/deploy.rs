//! `deploy/`: the CloudFormation stack, the IAM policy for users who deploy otherwise, and the
//! Dockerfile. What can be checked without AWS or a container engine is checked here: the two
//! policies are one, they grant exactly the AWS calls the code makes (read from the code, not
//! typed again), nothing mutating is granted on `*`, and the image, the stack and the config
//! agree on commands, paths and variable names. `cfn-lint` runs in scripts/test.sh.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::{Value, json};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn template() -> Value {
    serde_saphyr::from_str(&read("deploy/cloudformation/activegate-lifecycle.yaml"))
        .expect("the template is YAML (long-form intrinsic functions, no custom tags)")
}

fn shipped_policy() -> Value {
    serde_json::from_str(&read("deploy/iam/activegate-lifecycle-policy.json"))
        .expect("the policy is JSON")
}

fn resource<'a>(t: &'a Value, name: &str) -> &'a Value {
    let r = &t["Resources"][name];
    assert!(r.is_object(), "the template has no resource {name}");
    &r["Properties"]
}

/// The template's list parameters (`CommaDelimitedList`, `List<…>`): a `Ref` to one is a list.
fn list_parameters() -> BTreeSet<String> {
    template()["Parameters"]
        .as_object()
        .expect("the template has parameters")
        .iter()
        .filter(|(_, p)| {
            p["Type"]
                .as_str()
                .is_some_and(|t| t == "CommaDelimitedList" || t.starts_with("List<"))
        })
        .map(|(name, _)| name.clone())
        .collect()
}

/// CloudFormation's `{"Fn::Sub": "s"}` is `s`; `{"Ref": "X"}` is `${X}`, or `["${X}"]` when X
/// is a list parameter (the JSON file's way to say "one entry per element", in a Resource or
/// a condition alike); a single action or resource is a list of one. What remains can be
/// compared with the JSON file.
fn normalize(v: &Value) -> Value {
    normalize_with(v, &list_parameters())
}

fn normalize_with(v: &Value, lists: &BTreeSet<String>) -> Value {
    match v {
        Value::Object(m) if m.len() == 1 && m.contains_key("Fn::Sub") => m["Fn::Sub"].clone(),
        Value::Object(m) if m.len() == 1 && m.contains_key("Ref") => {
            let name = m["Ref"].as_str().unwrap_or_default();
            let placeholder = json!(format!("${{{name}}}"));
            if lists.contains(name) {
                json!([placeholder])
            } else {
                placeholder
            }
        }
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let v = normalize_with(v, lists);
                    let v = match (k.as_str(), v) {
                        ("Action" | "Resource", Value::String(s)) => json!([s]),
                        (_, v) => v,
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(|v| normalize_with(v, lists)).collect()),
        other => other.clone(),
    }
}

fn template_policy() -> Value {
    let t = template();
    let policies = resource(&t, "TaskRole")["Policies"]
        .as_array()
        .expect("the task role has inline policies");
    assert_eq!(policies.len(), 1, "one policy, the one deploy/iam ships");
    policies[0]["PolicyDocument"].clone()
}

fn statements(policy: &Value) -> Vec<Value> {
    normalize(policy)["Statement"]
        .as_array()
        .expect("Statement is a list")
        .clone()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_stacks_task_role_policy_is_the_shipped_policy() {
    assert_eq!(normalize(&template_policy()), normalize(&shipped_policy()));
}

/// `describe_services` → `DescribeServices`.
fn pascal(snake: &str) -> String {
    snake
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// The `.rs` files under `dir`, subdirectories included (modules split into folders), sorted.
fn rust_files(dir: &str) -> Vec<std::path::PathBuf> {
    let mut todo = vec![Path::new(ROOT).join(dir)];
    let mut files = Vec::new();
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                todo.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Every SDK operation the code calls: `self.ecs.<op>(` and `self.logs.<op>(` in src/ecs, the
/// only module that holds AWS clients (one file per job since the split of #15).
fn actions_called_by_the_code() -> BTreeSet<String> {
    let source: String = rust_files("src/ecs")
        .iter()
        .map(|p| std::fs::read_to_string(p).expect("source"))
        .collect();
    let mut found = BTreeSet::new();
    for (field, service) in [
        ("self.ecs", "ecs"),
        ("self.logs", "logs"),
        // The lease table's calls: `self.aws.dynamodb.<op>()` in src/ecs/leases.rs.
        (".dynamodb", "dynamodb"),
    ] {
        for (at, _) in source.match_indices(field) {
            let rest = source[at + field.len()..].trim_start();
            let Some(rest) = rest.strip_prefix('.') else {
                continue;
            };
            let op: String = rest
                .trim_start()
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            if !op.is_empty() {
                found.insert(format!("{service}:{}", pascal(&op)));
            }
        }
    }
    found
}

/// Calls the code can make that the shipped policy leaves out, and why.
const NOT_GRANTED: &[(&str, &str)] = &[
    (
        "ecs:DeregisterTaskDefinition",
        "pruning (rollout.keep_revisions > 0) is off by default: IAM grants it only on `*`",
    ),
    (
        "dynamodb:CreateTable",
        "the stack creates the lease table; LeaseTable::create serves tests and first tries",
    ),
];

#[test]
fn the_policy_grants_exactly_the_aws_calls_the_code_makes() {
    let called = actions_called_by_the_code();
    // The scan must see the calls it is meant to see.
    for known in [
        "ecs:DescribeServices",
        "ecs:UpdateService",
        "ecs:RegisterTaskDefinition",
        "logs:GetLogEvents",
        "dynamodb:UpdateItem",
    ] {
        assert!(called.contains(known), "{known} not found in {called:?}");
    }
    // Only src/ecs holds AWS clients: other modules call it, not the SDK.
    for dir in [
        "src/rollout",
        "src/daemon",
        "src/versions",
        "src/health",
        "src/status",
    ] {
        for path in rust_files(dir) {
            let text = std::fs::read_to_string(&path).expect("source");
            assert!(
                !text.contains("aws_sdk_ecs::Client") && !text.contains("aws_sdk_cloudwatchlogs"),
                "{} uses an AWS SDK client directly",
                path.display()
            );
        }
    }
    let mut granted = BTreeSet::new();
    for s in statements(&shipped_policy()) {
        granted.extend(strings(&s["Action"]));
    }
    let not_granted: BTreeSet<String> = NOT_GRANTED.iter().map(|(a, _)| a.to_string()).collect();
    for a in &not_granted {
        assert!(
            called.contains(a),
            "{a} is excused but the code does not call it"
        );
        assert!(!granted.contains(a), "{a} is excused but granted");
    }
    let mut expected: BTreeSet<String> = called.difference(&not_granted).cloned().collect();
    // IAM's dependent actions (the Service Authorization Reference's operation table):
    // registering a revision that names roles passes them, and so do CreateService and
    // CreateTaskSet (their tasks run with the revision's roles). CreateTaskSet with tags also
    // needs ecs:TagResource on the new task set: `blue_green_grant_problems` checks that grant.
    if [
        "ecs:RegisterTaskDefinition",
        "ecs:CreateService",
        "ecs:CreateTaskSet",
    ]
    .iter()
    .any(|a| expected.contains(*a))
    {
        expected.insert("iam:PassRole".into());
    }
    if expected.contains("ecs:CreateTaskSet") {
        expected.insert("ecs:TagResource".into());
    }
    assert_eq!(
        granted, expected,
        "the policy's actions (left) differ from the code's calls (right)"
    );
}

fn is_read_only(action: &str) -> bool {
    let op = action.split_once(':').map(|(_, op)| op).unwrap_or(action);
    ["Describe", "List", "Get"]
        .iter()
        .any(|p| op.starts_with(p))
}

/// Statements that grant a mutating ECS or IAM action (or any wildcard action) on `*`.
fn wildcard_grants(policy: &Value) -> Vec<String> {
    let mut bad = Vec::new();
    for s in statements(policy) {
        let resources = strings(&s["Resource"]);
        let everything = resources.iter().any(|r| r == "*");
        for a in strings(&s["Action"]) {
            if a.contains('*') {
                bad.push(format!("{a} (a wildcard action)"));
            } else if everything
                && (a.starts_with("ecs:") || a.starts_with("iam:"))
                && !is_read_only(&a)
            {
                bad.push(format!("{a} on *"));
            }
        }
    }
    bad
}

#[test]
fn no_statement_grants_a_mutating_ecs_or_iam_action_on_everything() {
    assert_eq!(wildcard_grants(&shipped_policy()), Vec::<String>::new());
    assert_eq!(wildcard_grants(&template_policy()), Vec::<String>::new());
    // The check can fail.
    let mut loose = shipped_policy();
    let on_everything = sid_index(&loose, "ReadTaskDefinitionsIamHasNoNarrowerResourceFor");
    loose["Statement"][on_everything]["Action"] =
        json!(["ecs:DescribeTaskDefinition", "ecs:UpdateService"]);
    assert_eq!(wildcard_grants(&loose), vec!["ecs:UpdateService on *"]);
    let mut star = shipped_policy();
    star["Statement"][0]["Action"] = json!("ecs:*");
    assert_eq!(wildcard_grants(&star), vec!["ecs:* (a wildcard action)"]);
}

/// Where statement `sid` is in the policy's list.
fn sid_index(policy: &Value, sid: &str) -> usize {
    policy["Statement"]
        .as_array()
        .expect("Statement is a list")
        .iter()
        .position(|s| s["Sid"] == sid)
        .unwrap_or_else(|| panic!("no statement {sid}"))
}

/// The IAM resource type a policy resource names: `service` for the managed services'
/// parameter, the type in the ARN otherwise (`task-set`, `service-deployment`, …), `*`.
fn resource_type(resource: &str) -> String {
    if resource == "${ManagedServiceArns}" {
        return "service".into();
    }
    if resource == "*" {
        return "*".into();
    }
    // `arn:${AWS::Partition}:ecs:${AWS::Region}:${AWS::AccountId}:task-set/…`: the type is
    // what precedes the first `/`, after the last `:` (the placeholders hold colons too).
    let head = resource.split('/').next().unwrap_or(resource);
    head.rsplit(':').next().unwrap_or(head).to_owned()
}

/// The resource types IAM authorises the blue/green and roll-back calls on, all required,
/// from the Service Authorization Reference ("Actions, resources, and condition keys for Amazon
/// Elastic Container Service"): task-set calls on the task set, the service's primary and its
/// deployments on the service, StopServiceDeployment on the service *and* the deployment.
const RESOURCE_TYPES: &[(&str, &[&str])] = &[
    ("ecs:CreateTaskSet", &["task-set"]),
    ("ecs:UpdateTaskSet", &["task-set"]),
    ("ecs:DeleteTaskSet", &["task-set"]),
    ("ecs:UpdateServicePrimaryTaskSet", &["service"]),
    ("ecs:ListServiceDeployments", &["service"]),
    (
        "ecs:StopServiceDeployment",
        &["service", "service-deployment"],
    ),
];

/// What is wrong with the grants on services' task sets and deployments: a call not granted on
/// every resource type IAM needs for it, or granted on one IAM does not use for it; a grant on
/// task sets or service deployments not narrowed to the managed services (`ecs:service`); task
/// sets tagged other than as CreateTaskSet creates them (`ecs:CreateAction`).
fn blue_green_grant_problems(policy: &Value) -> Vec<String> {
    let statements = statements(policy);
    let mut problems = Vec::new();
    let granted_on = |action: &str| -> BTreeSet<String> {
        statements
            .iter()
            .filter(|s| strings(&s["Action"]).iter().any(|a| a == action))
            .flat_map(|s| strings(&s["Resource"]))
            .map(|r| resource_type(&r))
            .collect()
    };
    for (action, needed) in RESOURCE_TYPES {
        let types = granted_on(action);
        if types.is_empty() {
            continue; // Not granted at all: the actions-equal-calls test reports it.
        }
        for t in *needed {
            if !types.contains(*t) {
                problems.push(format!("{action} is not granted on any {t}"));
            }
        }
        for t in &types {
            if !needed.contains(&t.as_str()) {
                problems.push(format!(
                    "{action} is granted on {t}, which IAM does not use"
                ));
            }
        }
    }
    let creates_task_sets = !granted_on("ecs:CreateTaskSet").is_empty();
    let mut tags_new_task_sets = false;
    for s in &statements {
        let types: BTreeSet<String> = strings(&s["Resource"])
            .iter()
            .map(|r| resource_type(r))
            .collect();
        if !types.contains("task-set") && !types.contains("service-deployment") {
            continue;
        }
        let sid = s["Sid"].as_str().unwrap_or_default();
        let narrowed = strings(&s["Condition"]["ArnEquals"]["ecs:service"])
            == vec!["${ManagedServiceArns}".to_owned()];
        let at_create = s["Condition"]["StringEquals"]["ecs:CreateAction"] == "CreateTaskSet";
        for a in strings(&s["Action"]) {
            if a == "ecs:TagResource" && types.contains("task-set") {
                if at_create {
                    tags_new_task_sets = true;
                } else {
                    problems.push(format!("{sid}: {a} on task sets beyond CreateTaskSet"));
                }
            } else if !narrowed {
                problems.push(format!("{sid}: {a} not narrowed to the managed services"));
            }
        }
    }
    if creates_task_sets && !tags_new_task_sets {
        problems.push("CreateTaskSet sends tags: ecs:TagResource on task-set with ecs:CreateAction CreateTaskSet is missing".into());
    }
    problems
}

#[test]
fn blue_green_and_roll_back_grants_reach_only_the_managed_services() {
    assert_eq!(
        blue_green_grant_problems(&shipped_policy()),
        Vec::<String>::new()
    );
    assert_eq!(
        blue_green_grant_problems(&template_policy()),
        Vec::<String>::new()
    );
    // The scan sees the grants it is meant to see.
    for (action, _) in RESOURCE_TYPES {
        let granted = statements(&shipped_policy())
            .iter()
            .any(|s| strings(&s["Action"]).iter().any(|a| a == action));
        assert!(granted, "{action} is not granted");
    }
    // The check can fail: task-set calls on every task set of the cluster.
    let mut loose = shipped_policy();
    let task_sets = sid_index(&loose, "RunTheManagedServicesTaskSets");
    loose["Statement"][task_sets]
        .as_object_mut()
        .expect("a statement")
        .remove("Condition");
    assert_eq!(
        blue_green_grant_problems(&loose),
        [
            "RunTheManagedServicesTaskSets: ecs:CreateTaskSet not narrowed to the managed services",
            "RunTheManagedServicesTaskSets: ecs:UpdateTaskSet not narrowed to the managed services",
            "RunTheManagedServicesTaskSets: ecs:DeleteTaskSet not narrowed to the managed services",
        ]
    );
    // … any tagging of task sets, not only at creation.
    let mut loose = shipped_policy();
    let tagging = sid_index(&loose, "TagTaskSetsOnlyAsTheyAreCreated");
    loose["Statement"][tagging]
        .as_object_mut()
        .expect("a statement")
        .remove("Condition");
    assert_eq!(
        blue_green_grant_problems(&loose),
        [
            "TagTaskSetsOnlyAsTheyAreCreated: ecs:TagResource on task sets beyond CreateTaskSet",
            "CreateTaskSet sends tags: ecs:TagResource on task-set with ecs:CreateAction CreateTaskSet is missing",
        ]
    );
    // … StopServiceDeployment on the services but not on their deployments (IAM needs both),
    // and a task-set call on the service, where IAM does not look for it.
    let mut loose = shipped_policy();
    let roll_back = sid_index(&loose, "RollBackTheManagedServicesDeployments");
    loose["Statement"]
        .as_array_mut()
        .expect("a list")
        .remove(roll_back);
    let services = sid_index(&loose, "RollTheManagedServices");
    loose["Statement"][services]["Action"]
        .as_array_mut()
        .expect("a list")
        .push(json!("ecs:DeleteTaskSet"));
    assert_eq!(
        blue_green_grant_problems(&loose),
        [
            "ecs:DeleteTaskSet is granted on service, which IAM does not use",
            "ecs:StopServiceDeployment is not granted on any service-deployment",
        ]
    );
}

#[test]
fn the_shipped_policy_is_a_well_formed_iam_policy() {
    let p = shipped_policy();
    let top: BTreeSet<&str> = p
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(top, BTreeSet::from(["Version", "Statement"]));
    assert_eq!(p["Version"], "2012-10-17");
    let mut sids = BTreeSet::new();
    for s in statements(&p) {
        let keys: BTreeSet<&str> = s
            .as_object()
            .expect("a statement is an object")
            .keys()
            .map(String::as_str)
            .collect();
        let allowed = BTreeSet::from(["Sid", "Effect", "Action", "Resource", "Condition"]);
        assert!(keys.is_subset(&allowed), "unexpected keys in {s}");
        let sid = s["Sid"].as_str().expect("every statement has a Sid");
        assert!(
            !sid.is_empty() && sid.chars().all(|c| c.is_ascii_alphanumeric()),
            "a Sid is alphanumeric: {sid}"
        );
        assert!(sids.insert(sid.to_owned()), "Sid {sid} is used twice");
        assert_eq!(s["Effect"], "Allow", "{sid}");
        let actions = strings(&s["Action"]);
        assert!(!actions.is_empty(), "{sid} has no actions");
        for a in &actions {
            let (service, op) = a.split_once(':').expect("service:Action");
            assert!(
                ["ecs", "logs", "iam", "dynamodb"].contains(&service),
                "{sid}: {a}"
            );
            assert!(
                op.chars().next().is_some_and(|c| c.is_ascii_uppercase())
                    && op.chars().all(|c| c.is_ascii_alphanumeric()),
                "{sid}: {a}"
            );
        }
        let resources = strings(&s["Resource"]);
        assert!(!resources.is_empty(), "{sid} has no resource");
        for r in &resources {
            assert!(
                r == "*" || r.starts_with("arn:${AWS::Partition}:") || r.starts_with("${"),
                "{sid}: {r}"
            );
        }
        if let Some(c) = s.get("Condition") {
            for op in c.as_object().expect("Condition is an object").keys() {
                assert!(
                    ["StringEquals", "ArnEquals", "ArnLike", "StringLike"].contains(&op.as_str()),
                    "{sid}: condition operator {op}"
                );
            }
        }
    }
    // PassRole only to ECS tasks.
    let pass = statements(&p)
        .into_iter()
        .find(|s| strings(&s["Action"]).contains(&"iam:PassRole".to_owned()))
        .expect("a PassRole statement");
    assert_eq!(
        pass["Condition"]["StringEquals"]["iam:PassedToService"],
        "ecs-tasks.amazonaws.com"
    );
    assert_eq!(strings(&pass["Resource"]), vec!["${ActiveGateRoleArns}"]);
}

#[test]
fn the_daemon_service_runs_replicas_that_lease_their_targets_and_keeps_its_breaker() {
    let t = template();
    let svc = resource(&t, "DaemonService");
    assert_eq!(svc["DesiredCount"], json!({ "Ref": "Replicas" }));
    assert_eq!(t["Parameters"]["Replicas"]["Default"], 2);
    assert_eq!(svc["LaunchType"], "FARGATE");
    // Replicas may overlap (they hold leases): an update starts new tasks before old ones stop.
    let d = &svc["DeploymentConfiguration"];
    assert_eq!(d["MinimumHealthyPercent"], 100);
    assert_eq!(d["MaximumPercent"], 200);
    // The lease table: on demand, one string key, TTL on the attribute the code writes.
    let table = resource(&t, "LeaseTable");
    assert_eq!(table["BillingMode"], "PAY_PER_REQUEST");
    assert_eq!(
        table["KeySchema"],
        json!([{ "AttributeName": "key", "KeyType": "HASH" }])
    );
    assert_eq!(
        table["AttributeDefinitions"],
        json!([{ "AttributeName": "key", "AttributeType": "S" }])
    );
    assert_eq!(
        table["TimeToLiveSpecification"],
        json!({ "AttributeName": "ttl", "Enabled": true })
    );
    let leases = read("src/ecs/leases.rs");
    assert!(leases.contains("\"#ttl\", \"ttl\"") && leases.contains(".key(\"key\""));
    // Its item actions on that table only, and nothing else of DynamoDB.
    let lease_statements: Vec<Value> = statements(&shipped_policy())
        .into_iter()
        .filter(|s| {
            strings(&s["Action"])
                .iter()
                .any(|a| a.starts_with("dynamodb:"))
        })
        .collect();
    assert_eq!(lease_statements.len(), 1);
    assert_eq!(
        strings(&lease_statements[0]["Resource"]),
        ["arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/${LeaseTable}"]
    );
    // The deploy config names the stack's table, so that its two replicas never both write.
    let config = activegate_lifecycle::config::Config::parse(
        "deploy/activegate-lifecycle.toml",
        &read("deploy/activegate-lifecycle.toml"),
    )
    .expect("the deploy config is valid");
    let lease = config
        .daemon
        .lease
        .expect("the deploy config has [daemon.lease]");
    assert!(
        lease.table.0.starts_with("activegate-lifecycle-") && lease.table.0.ends_with("-leases"),
        "{}",
        lease.table.0
    );
    assert_eq!(d["DeploymentCircuitBreaker"]["Enable"], true);
    assert_eq!(d["DeploymentCircuitBreaker"]["Rollback"], true);
    // The log group has a retention.
    assert!(resource(&t, "DaemonLogGroup")["RetentionInDays"].is_object());
}

#[test]
fn the_daemons_security_group_reaches_only_aws_apis_and_the_activegates() {
    let t = template();
    let sg = resource(&t, "DaemonSecurityGroup");
    assert!(sg.get("SecurityGroupIngress").is_none(), "no inbound rule");
    let egress = sg["SecurityGroupEgress"]
        .as_array()
        .expect("explicit egress");
    let ports: BTreeSet<(i64, i64)> = egress
        .iter()
        .map(|r| {
            assert_eq!(r["IpProtocol"], "tcp");
            (
                r["FromPort"].as_i64().expect("from"),
                r["ToPort"].as_i64().expect("to"),
            )
        })
        .collect();
    assert_eq!(ports, BTreeSet::from([(443, 443), (9999, 9999)]));
    let to_activegates = egress.iter().find(|r| r["FromPort"] == 9999).expect("9999");
    assert_eq!(
        normalize(&to_activegates["DestinationSecurityGroupId"]),
        "${ActiveGateSecurityGroupId}"
    );
    let ingress = resource(&t, "ActiveGateIngressFromDaemon");
    assert_eq!(ingress["FromPort"], 9999);
    assert_eq!(ingress["ToPort"], 9999);
    assert_eq!(
        normalize(&ingress["SourceSecurityGroupId"]),
        "${DaemonSecurityGroup}"
    );
}

/// The Dockerfile's instructions (continuations joined), as (INSTRUCTION, arguments).
fn dockerfile() -> Vec<(String, String)> {
    let text = read("deploy/Dockerfile").replace("\\\n", " ");
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let (i, rest) = l.split_once(char::is_whitespace)?;
            Some((i.to_ascii_uppercase(), rest.trim().to_owned()))
        })
        .collect()
}

fn json_form(args: &str) -> Vec<String> {
    serde_json::from_str(args).unwrap_or_else(|e| panic!("exec (JSON) form expected: {args}: {e}"))
}

#[test]
fn the_image_is_minimal_non_root_and_checks_itself_through_the_binary() {
    let d = dockerfile();
    let from: Vec<&String> = d
        .iter()
        .filter(|(i, _)| i == "FROM")
        .map(|(_, a)| a)
        .collect();
    let last = from.last().expect("a FROM");
    assert!(
        last.starts_with("gcr.io/distroless/static") || last.starts_with("scratch"),
        "the final stage is distroless static or scratch: {last}"
    );
    assert!(from.len() >= 2, "multi-stage");
    let user = d
        .iter()
        .rev()
        .find(|(i, _)| i == "USER")
        .map(|(_, a)| a.clone())
        .expect("a USER");
    let uid = user.split(':').next().unwrap_or_default();
    assert!(
        uid != "0" && uid != "root" && !uid.is_empty(),
        "USER {user}"
    );

    let binary = "/usr/local/bin/activegate-lifecycle";
    let copy = d
        .iter()
        .find(|(i, a)| i == "COPY" && a.starts_with("--from="))
        .expect("the binary is copied from the build stage");
    assert!(copy.1.ends_with(binary), "{}", copy.1);
    let health = d
        .iter()
        .find(|(i, _)| i == "HEALTHCHECK")
        .map(|(_, a)| a.clone())
        .expect("a HEALTHCHECK");
    let cmd = health
        .split_once("CMD")
        .expect("HEALTHCHECK … CMD")
        .1
        .trim();
    assert_eq!(json_form(cmd), vec![binary, "healthcheck"]);

    // The stack's task definition runs the same binary, the same way.
    let t = template();
    let container = &resource(&t, "DaemonTaskDefinition")["ContainerDefinitions"][0];
    assert_eq!(
        strings(&container["HealthCheck"]["Command"]),
        vec!["CMD", binary, "healthcheck"]
    );
    let entry = d
        .iter()
        .find(|(i, _)| i == "ENTRYPOINT")
        .map(|(_, a)| json_form(a))
        .expect("an ENTRYPOINT");
    assert_eq!(entry[0], binary);
    let cmd = d
        .iter()
        .find(|(i, _)| i == "CMD")
        .map(|(_, a)| json_form(a))
        .expect("a CMD");
    assert_eq!(strings(&container["Command"]), cmd);
    assert_eq!(container["ReadonlyRootFilesystem"], true);

    // The config and the manifest come from the variables the stack fills from SSM.
    // Every secret, the conditional ones (`Fn::If: [cond, secret, NoValue]`) included.
    let entries: Vec<Value> = container["Secrets"]
        .as_array()
        .expect("secrets")
        .iter()
        .map(|s| s.get("Fn::If").map_or_else(|| s.clone(), |b| b[1].clone()))
        .collect();
    assert_eq!(entries.len(), 4, "config, manifest and two optional tokens");
    let secrets: Vec<String> = entries
        .iter()
        .map(|s| {
            s["Name"]
                .as_str()
                .expect("every secret has a Name")
                .to_owned()
        })
        .collect();
    let config_var = cmd
        .iter()
        .find_map(|a| a.strip_prefix("env:"))
        .expect("the CMD reads the config from the environment");
    assert!(secrets.iter().any(|s| s == config_var), "{secrets:?}");
    let example = read("deploy/activegate-lifecycle.toml");
    assert!(example.contains("manifest = \"env:ACTIVEGATE_MANIFEST\""));
    assert!(secrets.iter().any(|s| s == "ACTIVEGATE_MANIFEST"));
    // No secret value in the stack: every secret is a reference.
    for s in &entries {
        let v = &s["ValueFrom"];
        assert!(
            v.is_object(),
            "ValueFrom is a reference, not a literal: {v}"
        );
    }
}

#[test]
fn the_dockerfiles_dependency_layer_stubs_every_cargo_target() {
    let manifest: toml::Table = read("Cargo.toml").parse().expect("Cargo.toml");
    let docker = read("deploy/Dockerfile");
    for bench in manifest["bench"].as_array().expect("[[bench]]") {
        let name = bench["name"].as_str().expect("a bench name");
        assert!(
            docker.contains(name),
            "deploy/Dockerfile must stub benches/{name}.rs for its dependency layer"
        );
    }
}

#[test]
fn the_container_config_is_valid_and_leaves_time_to_stop_within_fargates_limit() {
    let config = activegate_lifecycle::config::Config::parse(
        "deploy/activegate-lifecycle.toml",
        &read("deploy/activegate-lifecycle.toml"),
    )
    .expect("the container config is valid");
    assert!(config.daemon.shutdown_deadline_seconds.0 < 120.0);
    let t = template();
    let container = &resource(&t, "DaemonTaskDefinition")["ContainerDefinitions"][0];
    assert_eq!(container["StopTimeout"], 120);
}

/// Files every `include_str!`/`include_bytes!` in src/ embeds, relative to the repository.
fn embedded_files() -> Vec<String> {
    fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs")
                // Unit tests (`tests.rs`) are not part of the release build.
                && path.file_name().is_some_and(|n| n != "tests.rs")
            {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&Path::new(ROOT).join("src"), &mut files);
    let mut embedded = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("source");
        for marker in ["include_str!(\"", "include_bytes!(\""] {
            for (at, _) in text.match_indices(marker) {
                let rest = &text[at + marker.len()..];
                let Some(end) = rest.find('"') else { continue };
                let joined = file.parent().expect("a folder").join(&rest[..end]);
                let mut parts: Vec<String> = Vec::new();
                for c in joined
                    .strip_prefix(ROOT)
                    .expect("inside the repo")
                    .components()
                {
                    match c {
                        std::path::Component::ParentDir => {
                            parts.pop();
                        }
                        std::path::Component::Normal(p) => {
                            parts.push(p.to_string_lossy().into_owned())
                        }
                        _ => {}
                    }
                }
                embedded.push(parts.join("/"));
            }
        }
    }
    embedded
}

#[test]
fn the_image_build_copies_every_file_the_binary_embeds() {
    let copied: Vec<String> = dockerfile()
        .into_iter()
        .filter(|(i, a)| i == "COPY" && !a.starts_with("--from="))
        .flat_map(|(_, a)| {
            let words: Vec<String> = a.split_whitespace().map(str::to_owned).collect();
            words[..words.len().saturating_sub(1)].to_vec()
        })
        .collect();
    let embedded = embedded_files();
    assert!(
        embedded.iter().any(|e| e.starts_with("tests/fixtures/")),
        "the scan finds the demo's manifest: {embedded:?}"
    );
    for e in embedded {
        assert!(
            copied
                .iter()
                .any(|c| e == *c || e.starts_with(&format!("{}/", c.trim_end_matches('/')))),
            "deploy/Dockerfile does not COPY {e}, which src/ embeds (copied: {copied:?})"
        );
    }
}

#[test]
fn the_stack_lets_the_task_role_assume_exactly_the_named_target_roles_and_only_when_named() {
    let t = template();
    let p = &t["Parameters"]["TargetRoleArns"];
    assert_eq!(p["Type"], "CommaDelimitedList");
    assert_eq!(
        p["Default"], "",
        "no target role unless the stack names one"
    );
    // Only when some role is named: an empty list joins to "".
    assert_eq!(
        t["Conditions"]["HasTargetRoles"],
        json!({"Fn::Not": [{"Fn::Equals": [{"Fn::Join": ["", {"Ref": "TargetRoleArns"}]}, ""]}]})
    );
    let r = &t["Resources"]["AssumeTargetRolesPolicy"];
    assert_eq!(r["Type"], "AWS::IAM::Policy");
    assert_eq!(r["Condition"], "HasTargetRoles");
    assert_eq!(r["Properties"]["Roles"], json!([{"Ref": "TaskRole"}]));
    // The policy deploy/iam ships for it: sts:AssumeRole on exactly the named roles.
    let file: Value = serde_json::from_str(&read("deploy/iam/assume-target-roles-policy.json"))
        .expect("the policy is JSON");
    assert_eq!(
        normalize(&r["Properties"]["PolicyDocument"]),
        normalize(&file)
    );
    let granted = statements(&r["Properties"]["PolicyDocument"]);
    assert_eq!(granted.len(), 1);
    assert_eq!(strings(&granted[0]["Action"]), ["sts:AssumeRole"]);
    assert_eq!(strings(&granted[0]["Resource"]), ["${TargetRoleArns}"]);
    // And nowhere else: the task role's own policy grants no STS action.
    for s in statements(&template_policy()) {
        let actions = strings(&s["Action"]);
        assert!(
            actions.iter().all(|a| !a.starts_with("sts:")),
            "{actions:?}"
        );
    }
    // The parameter is shown with what the daemon manages.
    let groups = t["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
        .as_array()
        .expect("parameter groups");
    assert!(
        groups
            .iter()
            .any(|g| strings(&g["Parameters"]).contains(&"TargetRoleArns".to_owned()))
    );
}
