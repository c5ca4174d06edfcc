#!/usr/bin/env bash
# The main job on the default model, from a fresh clone: set-up, model fetch,
# build, then the service: `mpirun -n 3 t2 serve` (rank 0 coordinates, ranks 1-2
# work), an expert trained per demo task with a small budget, a mixed evaluation
# with two-pass adaptation beside the base model, the results table, a sample of
# the audit log, and a clean stop. Progress is printed throughout.
# Environment: T2_DEMO_PORT (8080), T2_DEMO_STEPS (8), T2_DEMO_EVAL (16 per task).
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
say() { printf '\n=== [%4ds] %s\n' "$(( $(date +%s) - started ))" "$*"; }

say "set-up, model, build (the t2 program only)"
bash scripts/setup.sh
bash scripts/fetch-model.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build build --target t2 --parallel "$(nproc)"

model=models/SmolLM2-135M-Instruct.Q4_1.gguf
t2=./build/cli/t2
./build/cli/t2 info "$model" | head -8

say "one plain generation on the backbone"
$t2 generate --model "$model" --temperature 0 --max-tokens 60 \
  --prompt "What is the capital of France?"

# ---- the service ---------------------------------------------------------------
port=${T2_DEMO_PORT:-8080}
steps=${T2_DEMO_STEPS:-8}
per_task=${T2_DEMO_EVAL:-16}
export T2_TOKEN=${T2_TOKEN:-demo-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')}
export T2_SERVER=http://127.0.0.1:$port
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_WAIT_POLICY=passive
store=var/demo.db
mkdir -p var
rm -f "$store" "$store"-* "$store".pid "$store".url

say "starting mpirun -n 3 t2 serve (log: var/demo-serve.log); rank 1 builds the SVD cache once"
mpirun -n 3 --oversubscribe --bind-to none --enable-recovery \
  $t2 serve --config configs/local.toml --port "$port" --store "$store" \
  > var/demo-serve.log 2>&1 &
mpirun_pid=$!
stop_service() {
  if [ -f "$store.pid" ]; then kill -TERM "$(cat "$store.pid")" 2>/dev/null || true; fi
}
trap 'stop_service' EXIT
for i in $(seq 1 600); do
  status=$(curl -s "$T2_SERVER/v1/health" | jq -r .status 2>/dev/null || true)
  [ "$status" = "ok" ] && break
  kill -0 $mpirun_pid 2>/dev/null || { tail -30 var/demo-serve.log; exit 1; }
  if (( i % 10 == 0 )); then echo "  waiting for the workers: $(tail -1 var/demo-serve.log | cut -c1-110)"; fi
  sleep 1
done
[ "$status" = "ok" ] || { echo "service did not come up"; tail -30 var/demo-serve.log; exit 1; }
grep -E "\[r0 coord\].*(  [a-z ]+ {2,}|listening)" var/demo-serve.log | head -20 || true

# ---- training: one expert per demo task ------------------------------------------
# sst2 and boolq both learn within a few steps at this model size (arc_easy does
# not: the base model rarely answers with a letter).
say "training experts (sst2, boolq: $steps steps each; 8 prompts x 4 samples per step, both workers all-reduce)"
train() {  # task steps max_tokens
  echo "{\"type\": \"train\", \"spec\": {\"task\": \"$1\", \"expert\": \"$1\",
        \"steps\": $2, \"prompts_per_step\": 8, \"samples_per_prompt\": 4,
        \"max_tokens\": $3, \"learning_rate\": 0.005}}" > "var/train-$1.json"
  $t2 submit "var/train-$1.json" --wait
}
train sst2 "$steps" 16
train boolq "$steps" 16
$t2 experts

# ---- mixed evaluation: base, two-pass adaptation, oracle ----------------------------
eval_tasks='["sst2", "boolq", "gsm8k"]'
say "mixed evaluation: sst2, boolq, gsm8k (no expert), $per_task validation questions each"
evaluate() {  # name tasks-json model
  # offset 64: past the validation questions that training may validate on.
  echo "{\"type\": \"evaluate\", \"spec\": {\"tasks\": $2, \"limit\": $per_task, \"offset\": 64,
        \"model\": \"$3\", \"max_tokens\": 96}}" > "var/eval-$1.json"
  $t2 submit "var/eval-$1.json" --wait --json > "var/eval-$1.out.json"
}
evaluate base "$eval_tasks" base        # backbone only
evaluate t2-auto "$eval_tasks" t2-auto  # pass 1 picks the expert (prompt dispatch)
evaluate oracle-sst2 '["sst2"]' sst2    # each task with its own expert
evaluate oracle-boolq '["boolq"]' boolq

say "results"
python3 - var/eval-base.out.json var/eval-t2-auto.out.json var/eval-oracle-sst2.out.json \
  var/eval-oracle-boolq.out.json <<'PY'
import json, sys
base, auto, *oracles = (json.load(open(p)) for p in sys.argv[1:])
oracle = {t: r for o in oracles for t, r in o["result"]["per_task"].items()}
def cell(r):
    if not r:
        return f"{'(base)':>16}"
    lo, hi = r.get("ci95", [0, 0])
    return f"{100*r['accuracy']:>5.1f}% [{100*lo:>3.0f}-{100*hi:>3.0f}]"
print(f"{'task':<10} {'n':>3}  {'base':>16}  {'t2-auto':>16}  {'oracle':>16}")
for task, b in base["result"]["per_task"].items():
    a = auto["result"]["per_task"].get(task, {})
    o = oracle.get(task, b if task not in oracle else {})
    print(f"{task:<10} {b['n']:>3}  {cell(b)}  {cell(a)}  {cell(oracle.get(task))}")
print(f"{'all':<10} {base['result']['n']:>3}  {cell(base['result'])}  {cell(auto['result'])}")
print(f"(95 % Wilson intervals; jobs {base['id']}, {auto['id']}; "
      f"{base['result']['seconds']:.0f} s and {auto['result']['seconds']:.0f} s)")
# The scheduler's cost model: its estimate error (MAPE) on each job's shards, and
# over its recent shards (training steps included) after the mixed evaluation.
cb, ca = base["result"].get("cost_model", {}), auto["result"].get("cost_model", {})
if ca:
    print(f"cost model MAPE: base job {100*cb.get('job_mape', 0):.1f}% over "
          f"{cb.get('job_shards', 0)} shards, t2-auto job {100*ca['job_mape']:.1f}% over "
          f"{ca['job_shards']}; {100*ca['mape']:.1f}% over the last {ca['mape_shards']} of "
          f"{ca['shards']} shards learned")
PY
auto_job=$(jq -r .id var/eval-t2-auto.out.json)

say "audit log: what the first pass chose, per task (job $auto_job)"
$t2 decisions --job "$auto_job" --kind request --group-by task,expert
say "audit log: a sample of decisions"
$t2 decisions --job "$auto_job" --limit 8
$t2 decisions --kind placement --limit 5

say "stopping the service (SIGTERM to rank 0: drain, then exit)"
trap - EXIT
stop_service
wait $mpirun_pid && echo "service stopped cleanly (exit 0)"
tail -3 var/demo-serve.log
say "done"
