#!/usr/bin/env bash
# Builds the benchmark's own venv for LiteLLM's proxy (bench/.venv-litellm), kept apart from
# tokenomy's venv so its many pinned dependencies never touch ours.
# Pinned to 1.108.6: the newest release whose [proxy] extras all resolve on our package index
# (1.108.10+ pin litellm-enterprise / litellm-proxy-extras builds not published there); the
# withdrawn (compromised) 1.107 release is avoided on purpose.
set -euo pipefail
cd "$(dirname "$0")"
LITELLM_VERSION="${LITELLM_VERSION:-1.108.6}"
VENV=.venv-litellm
if [ ! -x "$VENV/bin/litellm" ] || ! "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('litellm') != '$LITELLM_VERSION')"; then
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet "litellm[proxy]==$LITELLM_VERSION"
fi
echo "$VENV/bin/litellm"
