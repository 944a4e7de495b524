#!/usr/bin/env bash
# Gate a model release on its deployment pipeline: fail the CI job when the system we deploy on
# costs more than we accept. Run from CI with the model's weights and a labeled validation set.
#
#   examples/ci_gate.sh MODEL WEIGHTS DATA DEPLOY.yaml [OUT]
#
# Exit codes: 0 every gate passed; 3 a gate failed (the conditions are printed); 2 a usage error
# (bad model, data, pipeline or gate: nothing was measured); anything else: sysnoise broke.
set -uo pipefail
model=$1 weights=$2 data=$3 deploy=$4 out=${5:-results/release-gate}

sysnoise run --model "$model" --weights "$weights" --data "$data" --deploy "$deploy" --out "$out" \
    --noise decoder --noise resize --noise precision \
    --fail-if 'deploy.delta>0.5' \
    --fail-if 'resize.max>1' \
    --fail-if 'flip>5%' \
    --json --no-progress > "$out.summary.json"
code=$?
case $code in
  0) echo "release gate: passed (summary: $out.summary.json, report: $out/report.html)" ;;
  3) echo "release gate: FAILED, see the conditions above and $out/report.html" ;;
  2) echo "release gate: usage error, nothing measured" ;;
  *) echo "release gate: sysnoise exited $code" ;;
esac
exit $code
