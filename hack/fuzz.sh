#!/usr/bin/env bash
# Fuzzes every fuzz target of the module, one after the other, for a fixed number of
# executions each: `hack/fuzz.sh 20000` (make fuzz), `hack/fuzz.sh 1000` (make
# fuzz-short, CI). A count, never a duration: with a duration, Go 1.26's coordinator can
# end a clean run with a spurious "context deadline exceeded" (golang/go#75804, fixed in
# Go 1.27), and a slow machine only takes longer to do the same work. A target that
# finds a failure (its input is written to testdata/fuzz/<target>/) or hangs past
# FUZZ_TIMEOUT fails the run, after the other targets ran. FUZZ_PARALLEL workers per
# target (default 1); FUZZ_MATCH narrows the targets (a grep -E pattern); FUZZ_MINIMIZE
# bounds the minimization of each new input (default 1000x: on a slow target the default
# 60 s of it showed as a run making no progress).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
execs=${1:?usage: hack/fuzz.sh EXECUTIONS_PER_TARGET}
GO=${GO:-go}
start=$SECONDS
passed=0
failed=()
summary=()
# "dir target" for every func FuzzX(f *testing.F) in a _test.go file.
targets=$(grep -rE --include='*_test.go' --exclude-dir=.cache --exclude-dir=.git -o '^func Fuzz[A-Za-z0-9_]*\(f \*testing\.F\)' . |
  sed -E 's#^\./(.*)/[^/]*:func (Fuzz[A-Za-z0-9_]*)\(.*#\1 \2#' | grep -E -- "${FUZZ_MATCH:-.}" | sort)
[ -n "$targets" ] || { echo "fuzz: no fuzz target found"; exit 1; }
while read -r dir target; do
  t0=$SECONDS
  log=$(mktemp)
  echo "fuzz: $target (./$dir), $execs executions"
  # The seeds and every input written to testdata/fuzz first, as go test runs them: a
  # fuzzing run with a small count may stop before it has replayed them all.
  if "$GO" test -count=1 -run "^${target}\$" "./$dir" >"$log" 2>&1 || { cat "$log"; false; } &&
    "$GO" test -run '^$' -fuzz "^${target}\$" -fuzztime "${execs}x" -fuzzminimizetime "${FUZZ_MINIMIZE:-1000x}" -parallel "${FUZZ_PARALLEL:-1}" \
    -timeout "${FUZZ_TIMEOUT:-30m}" "./$dir" 2>&1 | tee "$log" | { grep -v '^fuzz: elapsed' || true; }; then
    passed=$((passed + 1))
  else
    failed+=("$target (./$dir)")
  fi
  last=$(grep '^fuzz: elapsed' "$log" | tail -1 || true)
  summary+=("$(printf '%-28s %4ss  %s' "$target" $((SECONDS - t0)) "${last#fuzz: elapsed: }")")
  rm -f "$log"
done <<<"$targets"
echo "fuzz: per target (wall time including the build; last progress line)"
printf '  %s\n' "${summary[@]}"
for f in "${failed[@]}"; do
  echo "fuzz: FAILED $f: a failing input is in its testdata/fuzz (re-run: go test -run '<target>/<file>')"
done
echo "fuzz: $passed passed, ${#failed[@]} failed in $((SECONDS - start))s"
[ ${#failed[@]} -eq 0 ]
