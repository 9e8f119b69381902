#!/usr/bin/env bash
# The release binary's size and its idle footprint, for README's numbers:
#   bash scripts/idle_rss.sh [BINARY]      (default target/release/activegate-lifecycle)
# Prints the binary's size (as built and stripped), then runs the simulator (the same binary's
# `sim`, 20x), creates and verifies one target of 2 tasks with `rollout`, starts `run
# --no-initial-run` with the production probe interval (15 s), lets it settle for 20 s and reads
# its memory from /proc after 60 s more, as benches/side_by_side.rs measures "idle".
set -euo pipefail
cd "$(dirname "$0")/.."

bin="${1:-target/release/activegate-lifecycle}"
[ -x "$bin" ] || { echo "no binary at $bin (cargo build --release)" >&2; exit 2; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB (%.1f MB)", b / 1048576, b / 1000000 }'; }
size=$(stat -c %s "$bin")
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
strip -o "$work/stripped" "$bin"
echo "binary: $(mib "$size") as built, $(mib "$(stat -c %s "$work/stripped")") stripped"

export RUST_LOG=warn
"$bin" sim --listen 127.0.0.1:0 --state-dir "$work" --speed 20 >"$work/sim.out" 2>"$work/sim.log" &
pids+=($!)
for _ in $(seq 100); do grep -q '^endpoint:' "$work/sim.out" 2>/dev/null && break; sleep 0.1; done
endpoint=$(sed -n 's/^endpoint: //p' "$work/sim.out")
[ -n "$endpoint" ] || { cat "$work/sim.log" >&2; exit 1; }

cat >"$work/ag.toml" <<EOF
[daemon]
status_listen = "127.0.0.1:0"

[aws]
endpoint_url = "$endpoint"

[[target]]
name = "prod"
region = "us-east-1"
cluster = "idle"
service = "activegate"
family = "activegate"
image = "public.ecr.aws/dynatrace/dynatrace-activegate:1.301.70.20241127-162512"
execution_role_arn = "arn:aws:iam::123456789012:role/exec"
desired_count = 2
manifest = "$PWD/tests/fixtures/activegate-k8s.yaml"

[target.network]
subnets = ["subnet-0123456789abcdef0"]

[target.logs]
group = "/ecs/activegate"
retention_days = 7
stream_prefix = "ag"

[target.secrets]
tenant_token = "arn:aws:secretsmanager:us-east-1:123456789012:secret:dt/tenant-AbCdEf"

[target.environment]
DT_TENANT = "abc12345"
DT_SERVER = "https://abc12345.live.dynatrace.com/communication"

[target.rollout]
strategy = "rolling"
bake_seconds = 1
deadline_seconds = 120

[target.probe]
interval_seconds = 15
timeout_seconds = 2
grace_seconds = 120
ca_bundle = "$work/ca.pem"
EOF
export AWS_ACCESS_KEY_ID=AKIDSIMULATOR AWS_SECRET_ACCESS_KEY=not-a-secret
curl -fsS "$endpoint/" -H 'content-type: application/x-amz-json-1.1' \
  -H 'x-amz-target: AmazonEC2ContainerServiceV20141113.CreateCluster' \
  -d '{"clusterName": "idle"}' >/dev/null
"$bin" rollout --config "$work/ag.toml" >"$work/rollout.out" 2>"$work/rollout.log" || {
  cat "$work/rollout.out" "$work/rollout.log" >&2
  exit 1
}
"$bin" run --config "$work/ag.toml" --no-initial-run >"$work/run.out" 2>"$work/run.log" &
daemon=$!
pids+=("$daemon")
sleep 20
cpu() { awk '{ print $14 + $15 }' "/proc/$daemon/stat"; }
kib() { awk -v k="$1" '$1 == k { print $2 }' "/proc/$daemon/status"; }
# Wake-ups: the voluntary context switches of all the daemon's threads.
wakeups() { cat /proc/"$daemon"/task/*/status | awk '$1 == "voluntary_ctxt_switches:" { n += $2 } END { print n }'; }
c0=$(cpu) w0=$(wakeups)
sleep 60
c1=$(cpu) w1=$(wakeups)
awk -v rss="$(kib VmRSS:)" -v anon="$(kib RssAnon:)" -v file="$(kib RssFile:)" \
  -v hwm="$(kib VmHWM:)" -v ticks=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" -v w=$((w1 - w0)) 'BEGIN {
  printf "idle: RSS %.1f MiB (heap %.1f + mapped code %.1f), peak %.1f MiB, CPU %.1f s per hour, %.1f wake-ups a second\n",
    rss / 1024, anon / 1024, file / 1024, hwm / 1024, ticks / hz * 60, w / 60
}'
