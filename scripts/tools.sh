#!/usr/bin/env bash
# Installs the project's tools (moto, cfn-lint, aws-sam-cli, cargo-lambda) into a venv keyed by
# the requirements file, and prints the venv's bin directory. Idempotent and quiet when done once.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
req="$root/scripts/requirements-tools.txt"
key=$(sha256sum "$req" | cut -c1-12)
venv="${SLACKBR_TOOLS_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/slack-bedrock-tools}/venv-$key"
if [ ! -x "$venv/bin/moto_server" ] || [ ! -f "$venv/.complete" ]; then
  python=$(command -v python3.11 || command -v python3)
  echo "tools: creating $venv (moto, cfn-lint, aws-sam-cli, cargo-lambda)" >&2
  start=$(date +%s)
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --upgrade pip >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req" >&2
  touch "$venv/.complete"
  echo "tools: ready in $(( $(date +%s) - start ))s" >&2
fi
echo "$venv/bin"
