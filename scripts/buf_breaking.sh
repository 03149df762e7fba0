#!/usr/bin/env bash
# `buf breaking` for make lint: the protos of this checkout against those of the previous commit.
#
# The previous commit: HEAD~1 when protos/ and buf.yaml are as committed (CI checks the commit it
# checked out against its parent), HEAD when they have uncommitted changes (a working tree is
# checked against the commit it will follow). BUF_BREAKING_AGAINST=<ref> names another baseline
# (e.g. origin/main on a branch); BUF_BREAKING_AGAINST=none skips the check, saying so.
#
# A shallow clone (CI's fetch-depth: 1) lacks the parent: it is fetched (git fetch --deepen=1)
# and, if that fails, the check fails with the command that fixes it. It is skipped, with a line
# saying why, only where there is no history to compare with: no git checkout at all, a first
# commit, or a baseline from before the protos had a buf module (no buf.yaml there: the commit
# that moved the protos to their package paths is the first baseline).
set -euo pipefail
cd "$(dirname "$0")/.."
BUF=${BUF:-node_modules/.bin/buf}

skip() {
  echo "buf breaking: skipped: $*" >&2
  exit 0
}

against=${BUF_BREAKING_AGAINST:-}
[[ $against == none ]] && skip "BUF_BREAKING_AGAINST=none"
git rev-parse --git-dir >/dev/null 2>&1 || skip "not a git checkout, so no previous commit"
if [[ -z $against ]]; then
  if [[ -n $(git status --porcelain -- protos buf.yaml) ]]; then against=HEAD; else against=HEAD~1; fi
fi

commit=$(git rev-parse -q --verify "$against^{commit}" || true)
if [[ -z $commit && $(git rev-parse --is-shallow-repository) == true ]]; then
  echo "buf breaking: $against is not in this shallow clone; fetching one more commit of history" >&2
  git fetch -q --deepen=1 >&2 || true
  commit=$(git rev-parse -q --verify "$against^{commit}" || true)
  if [[ -z $commit && $(git rev-parse --is-shallow-repository) == true ]]; then
    echo "buf breaking: could not fetch $against: run \`git fetch --deepen=1\` (CI: check out with" \
      "fetch-depth: 2), or BUF_BREAKING_AGAINST=none to skip the check knowingly" >&2
    exit 1
  fi
fi
if [[ -z $commit ]]; then
  if [[ $against == HEAD~1 && $(git rev-list --parents -n 1 HEAD | wc -w) -eq 1 ]]; then
    skip "HEAD is the first commit"
  fi
  echo "buf breaking: no commit $against to compare with" >&2
  exit 1
fi
git cat-file -e "$commit:buf.yaml" 2>/dev/null ||
  skip "$against ($(git rev-parse --short "$commit")) predates the buf module (no buf.yaml): nothing to compare with"

echo "buf breaking: protos against $against ($(git rev-parse --short "$commit"))" >&2
"$BUF" breaking --against ".git#ref=$commit,subdir=protos"
