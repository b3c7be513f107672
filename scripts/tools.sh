#!/usr/bin/env bash
# Installs the project's tools into venvs keyed by their requirements files, and prints the bin
# directory of the main one. Idempotent and quiet when done once.
#   main venv (scripts/requirements-tools.txt): moto, cfn-lint, aws-sam-cli, cargo-lambda, duckdb
#   checkov venv (scripts/requirements-checkov.txt): checkov pins older cfn-lint and boto3 than
#   aws-sam-cli wants, so it lives apart; its entry point is linked into the main bin directory.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
home="${SLACKBR_TOOLS_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/slack-bedrock-tools}"

# venv_for REQUIREMENTS NAME: creates the venv if missing or incomplete; prints its path.
venv_for() {
  local req="$1" name="$2" key venv python start
  key=$(sha256sum "$req" | cut -c1-12)
  venv="$home/$name-$key"
  if [ ! -f "$venv/.complete" ]; then
    python=$(command -v python3.11 || command -v python3)
    echo "tools: creating $venv" >&2
    start=$(date +%s)
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check --upgrade pip >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req" >&2
    touch "$venv/.complete"
    echo "tools: $name ready in $(( $(date +%s) - start ))s" >&2
  fi
  echo "$venv"
}

# One installer at a time: concurrent test binaries may all ask at once.
mkdir -p "$home"
exec 9>"$home/.lock"
flock 9

main=$(venv_for "$root/scripts/requirements-tools.txt" venv)
checkov=$(venv_for "$root/scripts/requirements-checkov.txt" venv-checkov)
ln -sf "$checkov/bin/checkov" "$main/bin/checkov"
echo "$main/bin"
