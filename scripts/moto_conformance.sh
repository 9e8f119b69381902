#!/usr/bin/env bash
# Runs the engine's ECS and CloudWatch Logs calls, and the lease table (DynamoDB), against
# moto_server on loopback.
# Usage: moto_conformance.sh PYTHON_VENV
set -euo pipefail
cd "$(dirname "$0")/.."
venv=$1
port=$("$venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log=$(mktemp)
"$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
moto_pid=$!
trap 'kill "$moto_pid" 2>/dev/null || true; rm -f "$log"' EXIT
endpoint="http://127.0.0.1:$port"
for _ in $(seq 1 100); do
  "$venv/bin/python" -c "import urllib.request, sys; urllib.request.urlopen(sys.argv[1] + '/moto-api/')" "$endpoint" 2>/dev/null && break
  kill -0 "$moto_pid" 2>/dev/null || { cat "$log" >&2; echo "moto_server exited" >&2; exit 1; }
  sleep 0.1
done
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=eu-central-1 AWS_PAGER=""
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
subnet=$("$venv/bin/aws" --endpoint-url "$endpoint" ec2 describe-subnets --query 'Subnets[0].SubnetId' --output text)
group=$("$venv/bin/aws" --endpoint-url "$endpoint" ec2 describe-security-groups --query 'SecurityGroups[0].GroupId' --output text)
MOTO_ENDPOINT=$endpoint MOTO_SUBNET=$subnet MOTO_SECURITY_GROUP=$group \
  cargo test --locked --test moto_conformance --test leases --test assume_role --test fleet -- --ignored
