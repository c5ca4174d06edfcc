#!/usr/bin/env bash
# The main job on the default model, from a fresh clone: set-up, model fetch,
# build, then t2 on real prompts (model facts, a few answers with their speed).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/fetch-model.sh
bash scripts/build.sh

model=models/SmolLM2-135M-Instruct.Q4_1.gguf
./build/cli/t2 info "$model"
prompts=(
  "What is the capital of France?"
  "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many clips did Natalia sell altogether in April and May?"
  "Write a Python function that checks whether a string is a palindrome."
)
for p in "${prompts[@]}"; do
  echo
  echo "### $p"
  ./build/cli/t2 generate --model "$model" --prompt "$p" --temperature 0 --max-tokens 200
done
