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
sed 's/MaximumPercent: 100/MaximumPercent: "lots"/' "$template" >"$out/broken-stack.yaml"
if "$venv/bin/cfn-lint" "$out/broken-stack.yaml" >"$out/broken-stack.log" 2>&1; then
  echo "cfn-lint accepted a broken template" >&2
  exit 1
fi
grep -q "lots" "$out/broken-stack.log"
# The IAM policy file is JSON (its structure is checked by tests/deploy.rs).
"$venv/bin/python" -m json.tool deploy/iam/activegate-lifecycle-policy.json >/dev/null

step "deploy/: the image's static (musl) release binary"
bash scripts/static_binary.sh
