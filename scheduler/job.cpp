// Checks on a submitted job and the shard template it implies.
#include "scheduler/job.h"

#include <cmath>

#include "t2/error.h"

namespace t2::scheduler {

ShardSpec shard_template(const Job& job) {
  ShardSpec spec;
  spec.kind = job.kind == JobKind::kTraining ? ShardKind::kTrain : ShardKind::kGenerate;
  spec.task = job.task;
  spec.strategy = job.strategy;
  spec.path = job.path;
  spec.two_pass = job.two_pass;
  spec.max_new_tokens = job.max_new_tokens;
  return spec;
}

void validate(const Job& job) {
  if (!(job.weight > 0) || !std::isfinite(job.weight))
    fail("job {}: weight must be a positive number, found {}", job.id, job.weight);
  if (job.kind == JobKind::kInference && job.prompt_tokens.empty())
    fail("job {}: an inference job needs at least one prompt, found none", job.id);
  if (job.kind == JobKind::kTraining && (job.steps == 0 || job.prompts_per_step == 0))
    fail("job {}: a training job needs steps and prompts per step, found {} and {}",
         job.id, job.steps, job.prompts_per_step);
}

}  // namespace t2::scheduler
