#!/usr/bin/env bash
# The main job on the default model, from a fresh clone: set-up, model fetch,
# build, then the service: `mpirun -n 3 t2 serve` (rank 0 coordinates, ranks 1-2
# work), an expert trained per demo task with a small budget, a mixed evaluation
# with two-pass adaptation beside the base model, the results table, a sample of
# the audit log, and a clean stop. Progress is printed throughout.
# Environment: T2_DEMO_PORT (8080), T2_DEMO_STEPS (3), T2_DEMO_EVAL (8 per task).
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
steps=${T2_DEMO_STEPS:-3}
per_task=${T2_DEMO_EVAL:-8}
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
say "training experts ($steps steps of 4 prompts x 2 samples; both workers all-reduce)"
tasks=(gsm8k arc_easy)
for task in "${tasks[@]}"; do
  budget=64; [ "$task" = arc_easy ] && budget=16
  echo "{\"type\": \"train\", \"spec\": {\"task\": \"$task\", \"expert\": \"$task\",
        \"steps\": $steps, \"prompts_per_step\": 4, \"samples_per_prompt\": 2,
        \"max_tokens\": $budget, \"learning_rate\": 0.005}}" > "var/train-$task.json"
  $t2 submit "var/train-$task.json" --wait
done
$t2 experts

# ---- mixed evaluation: base vs two-pass adaptation ------------------------------------
say "mixed evaluation: ${tasks[*]}, $per_task validation questions each, base vs t2-auto"
for m in base t2-auto; do
  echo "{\"type\": \"evaluate\", \"spec\": {\"tasks\": [\"gsm8k\", \"arc_easy\"],
        \"limit\": $per_task, \"model\": \"$m\", \"max_tokens\": 96}}" > "var/eval-$m.json"
  $t2 submit "var/eval-$m.json" --wait --json > "var/eval-$m.out.json"
done

say "results"
python3 - var/eval-base.out.json var/eval-t2-auto.out.json <<'PY'
import json, sys
base, auto = (json.load(open(p)) for p in sys.argv[1:3])
print(f"{'task':<12} {'n':>4} {'base':>8} {'t2-auto':>8}")
for task, b in base["result"]["per_task"].items():
    a = auto["result"]["per_task"].get(task, {})
    print(f"{task:<12} {b['n']:>4} {100*b['accuracy']:>7.1f}% {100*a.get('accuracy', 0):>7.1f}%")
print(f"{'all':<12} {base['result']['n']:>4} {100*base['result']['accuracy']:>7.1f}% "
      f"{100*auto['result']['accuracy']:>7.1f}%")
print(f"(jobs {base['id']} and {auto['id']}; {base['result']['seconds']:.0f} s and "
      f"{auto['result']['seconds']:.0f} s)")
# The scheduler's cost model: its estimate error (MAPE) on each job's shards, and
# over its recent shards (training steps included) after the mixed evaluation.
cb, ca = base["result"].get("cost_model", {}), auto["result"].get("cost_model", {})
if ca:
    print(f"{'cost MAPE':<12} {'':>4} {100*cb.get('job_mape', 0):>7.1f}% "
          f"{100*ca['job_mape']:>7.1f}%   (per job over {cb.get('job_shards', 0)} and "
          f"{ca['job_shards']} shards; {100*ca['mape']:.1f}% over the last "
          f"{ca['mape_shards']} of {ca['shards']} shards learned)")
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
