#!/usr/bin/env bash
# Acceptance of the simulator by an independent client, the AWS CLI: create a
# cluster, register the task definition `translate` produces, create the
# service, see its deployment reach COMPLETED with running tasks, read their
# IPs, probe them over HTTPS with the simulator's CA, and read their logs; list
# the service deployment; then blue/green through the task sets of an EXTERNAL
# service (create, describe, swap the primary, scale in, delete).
#
# Usage: sim_acceptance.sh PYTHON_VENV
set -euo pipefail
cd "$(dirname "$0")/.."
venv=$1
bin=target/debug/activegate-lifecycle
work=$(mktemp -d)
sim_pid=
cleanup() {
  if [ -n "$sim_pid" ] && kill -0 "$sim_pid" 2>/dev/null; then kill -KILL "$sim_pid"; fi
  rm -rf "$work"
}
trap cleanup EXIT

passed=0
ok() { passed=$((passed + 1)); echo "ok   $*"; }
fail() { echo "FAIL $*" >&2; echo "$passed passed, 1 failed"; exit 1; }

RUST_LOG=warn "$bin" sim --listen 127.0.0.1:0 --speed 50 --state-dir "$work/sim" >"$work/sim.out" 2>"$work/sim.err" &
sim_pid=$!
for _ in $(seq 1 200); do
  grep -q '^ca: ' "$work/sim.out" 2>/dev/null && break
  kill -0 "$sim_pid" 2>/dev/null || fail "the simulator exited: $(cat "$work/sim.err")"
  sleep 0.05
done
endpoint=$(sed -n 's/^endpoint: //p' "$work/sim.out")
ca=$(sed -n 's/^ca: //p' "$work/sim.out")
[ -n "$endpoint" ] && [ -s "$ca" ] || fail "the simulator did not print its endpoint and CA"
ok "simulator at $endpoint, CA at $ca"

export AWS_ACCESS_KEY_ID=AKIDSIMULATOR AWS_SECRET_ACCESS_KEY=not-a-secret AWS_DEFAULT_REGION=us-east-1 AWS_PAGER=""
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
aws() { "$venv/bin/aws" --endpoint-url "$endpoint" --output text "$@"; }

# Translated documents: the example manifest with the example config.
RUST_LOG=off "$bin" translate tests/fixtures/activegate-k8s.yaml --config config/activegate-lifecycle.toml >"$work/td.json" 2>"$work/report.txt"
RUST_LOG=off "$bin" translate tests/fixtures/activegate-k8s.yaml --config config/activegate-lifecycle.toml --output service >"$work/service.json" 2>/dev/null
image=$("$venv/bin/python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["containerDefinitions"][0]["image"])' "$work/td.json")

# The image starts in 20 simulated seconds (its health check allows 30 + 2 × 30).
"$venv/bin/python" - "$endpoint" "$image" <<'PY'
import json, sys, urllib.request
body = json.dumps({"image": sys.argv[2], "mode": "healthy", "start_seconds": 20}).encode()
req = urllib.request.Request(sys.argv[1] + "/sim/v1/images", data=body, method="POST")
assert urllib.request.urlopen(req).status == 200
PY

cluster=$(aws ecs create-cluster --cluster-name observability --query cluster.clusterArn)
[ "$cluster" = "arn:aws:ecs:us-east-1:123456789012:cluster/observability" ] || fail "create-cluster answered $cluster"
ok "create-cluster"
aws logs create-log-group --log-group-name /ecs/dynatrace-activegate
aws logs put-retention-policy --log-group-name /ecs/dynatrace-activegate --retention-in-days 30
retention=$(aws logs describe-log-groups --log-group-name-prefix /ecs/ --query 'logGroups[0].retentionInDays')
[ "$retention" = 30 ] || fail "retention is $retention"
ok "create-log-group, put-retention-policy"

td=$(aws ecs register-task-definition --cli-input-json "file://$work/td.json" --query taskDefinition.taskDefinitionArn)
[ "$td" = "arn:aws:ecs:us-east-1:123456789012:task-definition/dynatrace-activegate:1" ] || fail "register-task-definition answered $td"
ok "register-task-definition of the translated task definition"

aws ecs create-service --cli-input-json "file://$work/service.json" --query service.serviceArn >/dev/null
ok "create-service from the translated service document"

state=
for _ in $(seq 1 400); do
  state=$(aws ecs describe-services --cluster observability --services dynatrace-activegate \
    --query 'services[0].[deployments[0].rolloutState, runningCount, length(deployments)]')
  [ "$state" = "$(printf 'COMPLETED\t3\t1')" ] && break
  sleep 0.05
done
[ "$state" = "$(printf 'COMPLETED\t3\t1')" ] || fail "the deployment did not complete: $state"
ok "the deployment reached COMPLETED with 3 running tasks"

tasks=$(aws ecs list-tasks --cluster observability --service-name dynatrace-activegate --query 'taskArns' | tr '\t' ' ')
ips=$(aws ecs describe-tasks --cluster observability --tasks $tasks \
  --query 'tasks[].attachments[0].details[?name==`privateIPv4Address`].value[]' | tr '\t' ' ')
[ "$(echo "$ips" | wc -w)" = 3 ] || fail "expected 3 task IPs, got '$ips'"
ok "describe-tasks gives the tasks' IPs: $ips"

for ip in $ips; do
  "$venv/bin/python" - "$ip" "$ca" <<'PY' || fail "https://$ip:9999/rest/health did not answer RUNNING"
import ssl, sys, time, urllib.request
ctx = ssl.create_default_context(cafile=sys.argv[2])
for _ in range(100):
    try:
        with urllib.request.urlopen(f"https://{sys.argv[1]}:9999/rest/health", context=ctx, timeout=2) as r:
            if r.status == 200 and r.read() == b"RUNNING":
                sys.exit(0)
    except OSError:
        pass
    time.sleep(0.05)
sys.exit(1)
PY
done
ok "every task answers GET /rest/health over HTTPS with a certificate from the simulator's CA"

first=${tasks%% *}
stream="activegate/activegate/${first##*/}"
lines=
for _ in $(seq 1 100); do
  lines=$(aws logs get-log-events --log-group-name /ecs/dynatrace-activegate --log-stream-name "$stream" --start-from-head --query 'events[].message')
  case "$lines" in *"state RUNNING"*) break ;; esac
  sleep 0.05
done
case "$lines" in *"state RUNNING"*) ;; *) fail "no 'state RUNNING' in $stream: $lines" ;; esac
ok "get-log-events reads the task's log stream $stream"
writer=$(aws logs filter-log-events --log-group-name /ecs/dynatrace-activegate --log-stream-name-prefix activegate/token-writer/ --filter-pattern '"tokens written"' --query 'length(events)')
[ "$writer" = 3 ] || fail "expected 3 token-writer lines, got $writer"
ok "filter-log-events finds the token writers' lines"

# Service deployments of the rolling service: the one CreateService started, SUCCESSFUL.
deployments=$(aws ecs list-service-deployments --cluster observability --service dynatrace-activegate \
  --query 'serviceDeployments[].[status, targetServiceRevisionArn]')
case "$deployments" in
  "SUCCESSFUL	arn:aws:ecs:us-east-1:123456789012:service-revision/observability/dynatrace-activegate/"*) ;;
  *) fail "list-service-deployments answered '$deployments'" ;;
esac
[ "$(echo "$deployments" | wc -l)" = 1 ] || fail "expected one service deployment, got '$deployments'"
ok "list-service-deployments finds the SUCCESSFUL deployment CreateService started"

# Blue/green through task sets on an EXTERNAL service.
controller=$(aws ecs create-service --cluster observability --service-name ag-external --desired-count 2 \
  --deployment-controller type=EXTERNAL --query 'service.[deploymentController.type, length(taskSets)]')
[ "$controller" = "$(printf 'EXTERNAL\t0')" ] || fail "create-service (EXTERNAL) answered '$controller'"
ok "create-service with the EXTERNAL deployment controller"

td2=$(aws ecs register-task-definition --cli-input-json "file://$work/td.json" --query taskDefinition.taskDefinitionArn)
net='awsvpcConfiguration={subnets=[subnet-0123456789abcdef0]}'
create_set() { # TASK_DEFINITION CLIENT_TOKEN
  aws ecs create-task-set --cluster observability --service ag-external --task-definition "$1" \
    --launch-type FARGATE --network-configuration "$net" --scale value=100,unit=PERCENT \
    --client-token "$2" --query 'taskSet.[id, status, computedDesiredCount]'
}
blue=$(create_set "$td" blue-1)
blue_id=${blue%%	*}
case "$blue" in
  "ecs-svc/"*"	ACTIVE	2") ;;
  *) fail "create-task-set answered '$blue'" ;;
esac
[ "$(create_set "$td" blue-1)" = "$blue" ] || fail "create-task-set with the same client token made another task set"
[ "$(aws ecs describe-task-sets --cluster observability --service ag-external --query 'length(taskSets)')" = 1 ] \
  || fail "the client token's retry created a second task set"
ok "create-task-set at 100 % ($blue_id); the same client token answers the same task set"

steady() { # TASK_SET_ID: waits for 2 running tasks and STEADY_STATE
  local state=
  for _ in $(seq 1 400); do
    state=$(aws ecs describe-task-sets --cluster observability --service ag-external --task-sets "$1" \
      --query 'taskSets[0].[runningCount, stabilityStatus]')
    [ "$state" = "$(printf '2\tSTEADY_STATE')" ] && return 0
    sleep 0.05
  done
  fail "task set $1 did not reach 2 running tasks in STEADY_STATE: $state"
}
steady "$blue_id"
ok "describe-task-sets: 2 running tasks, STEADY_STATE"

primary=$(aws ecs update-service-primary-task-set --cluster observability --service ag-external \
  --primary-task-set "$blue_id" --query 'taskSet.status')
[ "$primary" = PRIMARY ] || fail "update-service-primary-task-set answered $primary"
service_td=$(aws ecs describe-services --cluster observability --services ag-external --query 'services[0].taskDefinition')
[ "$service_td" = "$td" ] || fail "the service's task definition is '$service_td', not the primary task set's"

green=$(create_set "$td2" green-1)
green_id=${green%%	*}
steady "$green_id"
running=$(aws ecs describe-services --cluster observability --services ag-external --query 'services[0].runningCount')
[ "$running" = 4 ] || fail "with two task sets at 100 % the service runs $running tasks, not 4"
aws ecs update-service-primary-task-set --cluster observability --service ag-external --primary-task-set "$green_id" >/dev/null
statuses=$(aws ecs describe-task-sets --cluster observability --service ag-external --task-sets "$blue_id" "$green_id" \
  --query 'taskSets[].status' | tr '\t' ' ')
[ "$statuses" = "ACTIVE PRIMARY" ] || fail "after the swap the task sets are '$statuses'"
service_td=$(aws ecs describe-services --cluster observability --services ag-external --query 'services[0].taskDefinition')
[ "$service_td" = "$td2" ] || fail "after the swap the service's task definition is '$service_td'"
ok "update-service-primary-task-set swaps PRIMARY and ACTIVE; the service follows the primary task set"

computed=$(aws ecs update-task-set --cluster observability --service ag-external --task-set "$blue_id" \
  --scale value=0,unit=PERCENT --query 'taskSet.computedDesiredCount')
[ "$computed" = 0 ] || fail "update-task-set to 0 % answered computedDesiredCount $computed"
reasons=
for _ in $(seq 1 200); do
  stopped=$(aws ecs list-tasks --cluster observability --started-by "$blue_id" --desired-status STOPPED --query 'taskArns' | tr '\t' ' ')
  if [ "$(echo "$stopped" | wc -w)" = 2 ]; then
    reasons=$(aws ecs describe-tasks --cluster observability --tasks $stopped --query 'tasks[].stoppedReason' | tr '\t' '\n' | sort -u)
    break
  fi
  sleep 0.05
done
[ "$reasons" = "Scaling activity initiated by (deployment $blue_id)" ] || fail "the scaled-in tasks stopped for '$reasons'"
ok "update-task-set to 0 % stops the old task set's tasks (Scaling activity initiated by ...)"

draining=$(aws ecs delete-task-set --cluster observability --service ag-external --task-set "$blue_id" --query 'taskSet.status')
[ "$draining" = DRAINING ] || fail "delete-task-set answered $draining"
gone=
for _ in $(seq 1 200); do
  gone=$(aws ecs describe-task-sets --cluster observability --service ag-external --task-sets "$blue_id" \
    --query 'failures[0].reason')
  [ "$gone" = MISSING ] && break
  sleep 0.05
done
[ "$gone" = MISSING ] || fail "the deleted task set is still described: $gone"
left=$(aws ecs describe-services --cluster observability --services ag-external --query 'services[0].taskSets[].id')
[ "$left" = "$green_id" ] || fail "the service's task sets are '$left'"
ok "delete-task-set: DRAINING, then gone; the primary task set stays"

kill -TERM "$sim_pid"
wait "$sim_pid" || fail "the simulator did not exit cleanly on SIGTERM"
sim_pid=
ok "the simulator stops cleanly on SIGTERM"
echo "$passed passed, 0 failed"
