#!/usr/bin/env bash
# buf breaking against the contracts of the previous commit on main (or
# $BUF_AGAINST, any buf input). Skipped when there is nothing to compare with.
set -euo pipefail
buf=${1:-buf}
against=${BUF_AGAINST:-}
if [ -z "$against" ]; then
  base=$(git rev-parse -q --verify HEAD~1 || true)
  if [ -z "$base" ] || [ -z "$(git ls-tree -d "$base" proto)" ]; then
    echo "buf breaking: no earlier commit with proto/ to compare with; skipped"
    exit 0
  fi
  against=".git#ref=$base"
fi
"$buf" breaking --against "$against"
echo "buf breaking: no breaking change against $against"
