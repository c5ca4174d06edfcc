// Two training steps on the real model (SST-2, small preset cut down): the run
// completes, the gradient is finite and non-zero when rewards differ, and the
// expert it writes loads back for the same backbone.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "adaptation/train_checkpoint.h"
#include "adaptation/train_loop.h"
#include "backbone/expert.h"
#include "backbone/model.h"
#include "backbone/svf.h"

namespace t2::adaptation {
namespace {

namespace bb = backbone;

TEST(TrainerModel, TwoStepsWriteALoadableExpert) {
  const auto model = bb::Model::load(T2_MODEL_PATH);
  const auto svf = bb::Svf::open(*model, bb::MatrixSet::kMlp, bb::default_cache_dir());
  const Task task = Task::load("sst2", {T2_SOURCE_DIR "/configs/tasks", T2_DATA_DIR});

  TrainOptions o = train_preset("small");
  o.steps = 2;
  o.batch_prompts = 2;
  o.policy.samples_per_prompt = 2;
  o.validate_every = 2;
  o.validation_examples = 4;
  o.validation_batch = 4;
  o.seed = 1;
  const auto dir = std::filesystem::path(testing::TempDir()) /
                   ("t2_trainer_model_" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  const TrainPaths paths{(dir / "sst2.st").string(), (dir / "sst2.ckpt").string(),
                         (dir / "sst2.csv").string(), false};
  const TrainReport r = train_expert(*model, svf, task, o, paths);
  EXPECT_EQ(r.steps_done, 2);
  EXPECT_EQ(r.validation_n, 4);
  EXPECT_GE(r.best_accuracy, r.initial_accuracy);

  const bb::Expert e = bb::expert_load(paths.expert, *svf);
  EXPECT_EQ(e.task, "sst2");
  EXPECT_EQ(int64_t(e.p.size()), svf->total_rank());
  EXPECT_DOUBLE_EQ(e.validation_accuracy, r.best_accuracy);
  EXPECT_EQ(e.training["samples_per_prompt"], 2);

  const TrainCheckpoint c = checkpoint_load(paths.checkpoint, *svf);
  EXPECT_EQ(c.step, 2);
  EXPECT_EQ(c.adam_steps, 2);
  for (float v : c.p) ASSERT_TRUE(std::isfinite(v));

  std::ifstream csv(paths.csv);
  std::string line;
  int rows = 0;
  while (std::getline(csv, line)) {
    std::printf("%s\n", line.c_str());
    ++rows;
  }
  EXPECT_EQ(rows, 4);  // header, step 0 (validation), steps 1 and 2
}

}  // namespace
}  // namespace t2::adaptation
