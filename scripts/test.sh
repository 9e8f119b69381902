#!/usr/bin/env bash
# Runs every check: formatting, lints, the Rust tests, conformance of the
# translated documents with AWS's own request models, the deploy/ stack with
# cfn-lint, and the static (musl) release binary the image ships. Installs what
# it needs (a Python virtual environment with botocore, moto, cfn-lint) by itself.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --locked --all-targets -- -D warnings

step "promtool and man (Prometheus's linter for /metrics; man for the man page)"
# Debian's `prometheus` package brings promtool; the end-to-end test runs `promtool check
# metrics` on the live daemon's /metrics. As root (CI) it is installed with apt-get; where it
# cannot be had the test says SKIPPED, loudly, and the rest still counts.
if ! command -v promtool >/dev/null || ! command -v man >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt_log=$(mktemp)
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      --no-install-recommends prometheus man-db; } >"$apt_log" 2>&1; then
      tail -n 20 "$apt_log" >&2
    fi
    rm -f "$apt_log"
  fi
fi
if command -v promtool >/dev/null; then
  promtool --version 2>&1 | head -n 1
  # The linter must be able to fail: the hand-written /metrics of old, a gauge named `_sum`.
  if printf '# HELP x_sum Sum.\n# TYPE x_sum gauge\nx_sum 1\n' | promtool check metrics >/dev/null 2>&1; then
    echo "promtool accepted a gauge named _sum" >&2
    exit 1
  fi
  export ACTIVEGATE_LIFECYCLE_REQUIRE_PROMTOOL=1
else
  echo "SKIPPED: promtool is not installed and could not be (apt-get install prometheus):" >&2
  echo "SKIPPED: /metrics is not checked by Prometheus's linter in this run" >&2
fi

step "cargo test"
cargo test --locked

step "AWS request-model conformance (botocore)"
venv="${ACTIVEGATE_LIFECYCLE_VENV:-.venv}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r scripts/requirements-test.txt

bin=target/debug/activegate-lifecycle
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
manifest=tests/fixtures/activegate-k8s.yaml
config=config/activegate-lifecycle.toml
export RUST_LOG=off
"$bin" translate "$manifest" --config "$config" >"$out/td.json" 2>/dev/null
"$bin" translate "$manifest" --config "$config" --output service >"$out/service.json" 2>/dev/null
"$bin" translate "$manifest" >"$out/td-no-config.json" 2>/dev/null
for f in tests/fixtures/conformance/*.yaml; do
  "$bin" translate "$f" --config "$config" >"$out/$(basename "$f" .yaml).json" 2>/dev/null
done

# The checker must be able to fail: a document with a wrong enum and an unknown member.
python3 - "$out/td.json" "$out/broken.json" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
doc["networkMode"] = "overlay"
doc["containerDefinitions"][0]["restartAlways"] = True
json.dump(doc, open(sys.argv[2], "w"))
PY
if "$venv/bin/python" scripts/check_aws_shapes.py RegisterTaskDefinition="$out/broken.json" >"$out/broken.log"; then
  echo "the AWS shape checker accepted a broken document:" >&2
  cat "$out/broken.log" >&2
  exit 1
fi
grep -q "overlay" "$out/broken.log"
grep -q "restartAlways" "$out/broken.log"

args=(CreateService="$out/service.json")
for f in "$out"/*.json; do
  case "$f" in */service.json|*/broken.json) ;; *) args+=(RegisterTaskDefinition="$f") ;; esac
done
"$venv/bin/python" scripts/check_aws_shapes.py "${args[@]}"

step "The engine's AWS calls against moto"
bash scripts/moto_conformance.sh "$venv"

step "Simulator acceptance with the AWS CLI"
bash scripts/sim_acceptance.sh "$venv"

step "deploy/: cfn-lint on the CloudFormation stack"
template=deploy/cloudformation/activegate-lifecycle.yaml
"$venv/bin/cfn-lint" "$template"
# The linter must be able to fail: a wrong type in the service's deployment configuration.
sed 's/MaximumPercent: 200/MaximumPercent: "lots"/' "$template" >"$out/broken-stack.yaml"
# (and the edit must have applied: otherwise the check would test nothing)
if cmp -s "$template" "$out/broken-stack.yaml"; then
  echo "the broken-template edit no longer applies to $template" >&2
  exit 1
fi
if "$venv/bin/cfn-lint" "$out/broken-stack.yaml" >"$out/broken-stack.log" 2>&1; then
  echo "cfn-lint accepted a broken template" >&2
  exit 1
fi
grep -q "lots" "$out/broken-stack.log"
# The IAM policy file is JSON (its structure is checked by tests/deploy.rs).
"$venv/bin/python" -m json.tool deploy/iam/activegate-lifecycle-policy.json >/dev/null

step "deploy/: the image's static (musl) release binary"
bash scripts/static_binary.sh
