#!/usr/bin/env bash
# Regenerate every figure and number the README shows, from the library's defaults (seed 0).
# Usage, from the repository root with the project installed (see the README's first lines):
#     bash figures/regenerate.sh            # about 10 minutes on 2 cores
# Each scenario's full results stay under results/readme/<scenario>/ (summary.json holds every
# number with its interval); the figures the README shows are copied into figures/.
set -euo pipefail
cd "$(dirname "$0")/.."
COOPSIM=${COOPSIM:-coopsim}
command -v "$COOPSIM" >/dev/null || COOPSIM=.venv/bin/coopsim
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] && PYTHON=.venv/bin/python
out=results/readme
for scenario in quickstart free-riding mechanism-duel adversaries equilibrium attribution-substrate cgsv-fairness contracts value-pluralism; do
    "$COOPSIM" run "$scenario" --out "$out/$scenario"
done
"$COOPSIM" demo --out "$out/demo"
rm -rf "$out/tune"  # a fresh study (a rerun into the same folder would only resume it)
"$COOPSIM" tune examples/tune/alpha_for_welfare.toml --workers 2 --out "$out/tune" --no-progress
"$PYTHON" benchmarks/bench_cgsv_approximation.py
# the controlled experiments behind docs/scenarios.md and docs/audit.md
"$COOPSIM" sweep examples/sweep_cgsv_sign.toml --workers 2 --out "$out/cgsv_sign" --no-progress
"$COOPSIM" sweep examples/sweep_attribution_patterns.toml --workers 2 --out "$out/attribution_patterns" --no-progress

cp "$out/free-riding/figures/mechanisms.png" figures/free_riding_mechanisms.png
cp "$out/free-riding/figures/paired_differences.png" figures/free_riding_paired.png
cp "$out/attribution-substrate/figures/rank_correlation.png" figures/attribution_rank_correlation.png
cp "$out/demo/figures/substrates.png" figures/substrates_digits_cla.png
cp "$out/cgsv_sign/figures/sweep_free_rider_profit_CGSV.png" figures/cgsv_sign_factors.png
cp "$out/adversaries/figures/robustness.png" figures/adversaries_robustness.png
cp "$out/cgsv-fairness/figures/cgsv_members_digits.png" figures/cgsv_members_digits.png
cp "$out/tune/figures/history.png" figures/tune_history.png
cp "$out/tune/figures/slices.png" figures/tune_slices.png
echo "README figures regenerated in figures/; numbers in $out/*/summary.json"
