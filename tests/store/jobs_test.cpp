// Jobs, events, checkpoints, experts, metrics and service state through the
// Store API: the durable calls are on disk when they return, and bad input is a
// clear error.
#include <gtest/gtest.h>

#include <cmath>

#include "store/sha256.h"
#include "store/store.h"
#include "t2/error.h"
#include "test_util.h"

namespace t2::store {
namespace {

using test::raw_query;
using test::TempDir;

class JobsTest : public ::testing::Test {
 protected:
  TempDir dir_;
  std::string path_ = dir_.file("t2.db");
  std::unique_ptr<Store> store_ = Store::open(path_);
};

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST_F(JobsTest, SubmitIsIdempotentBySubmissionId) {
  NewJob job{JobType::train, {{"task", "math"}}, 5, "client-42"};
  SubmitResult first = store_->submit_job(job);
  SubmitResult again = store_->submit_job(job);
  EXPECT_TRUE(first.created);
  EXPECT_FALSE(again.created);
  EXPECT_EQ(first.job.id, again.job.id);
  EXPECT_EQ(again.job.spec["task"], "math");
  EXPECT_EQ(again.job.priority, 5);

  // No submission id: every submission is a new job.
  NewJob anonymous{JobType::generate, {}, 0, std::nullopt};
  EXPECT_NE(store_->submit_job(anonymous).job.id, store_->submit_job(anonymous).job.id);
  EXPECT_EQ(store_->find_job("client-42")->id, first.job.id);
}

TEST_F(JobsTest, SubmitIsOnDiskWhenItReturns) {
  JobId id = store_->submit_job({JobType::evaluate, {}, 0, "durable"}).job.id;
  // A separate connection, no flush: the row is committed already.
  EXPECT_EQ(raw_query(path_, "SELECT id FROM jobs WHERE submission_id = 'durable'"),
            std::to_string(id));
}

TEST_F(JobsTest, StateChangesCarryAMatchingEventAndTerminalIsFinal) {
  JobId id = store_->submit_job({JobType::train, {}, 0, "s"}).job.id;
  EXPECT_EQ(store_->begin_attempt(id), 1);
  store_->update_job_state(id, JobState::failed, "rank 3 lost");

  Job job = *store_->get_job(id);
  EXPECT_EQ(job.state, JobState::failed);
  EXPECT_EQ(job.error, "rank 3 lost");
  EXPECT_EQ(job.attempts, 1);
  ASSERT_TRUE(job.started && job.finished);
  EXPECT_LE(*job.started, *job.finished);

  auto events = store_->job_events(id);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].payload["state"], "queued");
  EXPECT_EQ(events[1].payload["attempt"], 1);
  EXPECT_EQ(events[2].payload["state"], "failed");
  EXPECT_EQ(events[2].seq, 3);

  std::string message = error_of([&] { store_->update_job_state(id, JobState::running); });
  EXPECT_NE(message.find("already failed"), std::string::npos) << message;
  EXPECT_EQ(store_->job_events(id).size(), 3u) << "a refused change wrote an event";
}

TEST_F(JobsTest, UnknownJobIsAClearError) {
  std::string message = error_of([&] { store_->update_job_state(999, JobState::running); });
  EXPECT_NE(message.find("no job 999"), std::string::npos) << message;
  EXPECT_FALSE(store_->get_job(999));
}

TEST_F(JobsTest, UnfinishedJobsComeByPriorityThenAge) {
  JobId low = store_->submit_job({JobType::generate, {}, 1, "a"}).job.id;
  JobId high = store_->submit_job({JobType::generate, {}, 9, "b"}).job.id;
  JobId done = store_->submit_job({JobType::generate, {}, 9, "c"}).job.id;
  store_->update_job_state(done, JobState::succeeded);
  store_->begin_attempt(low);

  auto jobs = store_->unfinished_jobs();
  ASSERT_EQ(jobs.size(), 2u);
  EXPECT_EQ(jobs[0].id, high);
  EXPECT_EQ(jobs[1].id, low);
  EXPECT_EQ(store_->list_jobs(JobState::succeeded).size(), 1u);
  EXPECT_EQ(store_->list_jobs({}, 2).size(), 2u);
  EXPECT_EQ(store_->list_jobs({}, 10, high).front().id, low);
}

TEST_F(JobsTest, EventsAreSequencedPerJob) {
  JobId a = store_->submit_job({JobType::train, {}, 0, "a"}).job.id;
  JobId b = store_->submit_job({JobType::train, {}, 0, "b"}).job.id;
  for (int i = 0; i < 5; ++i) {
    store_->append_event(a, "progress", {{"step", i}});
    store_->append_event(b, "progress", {{"step", i}});
  }
  store_->flush();
  auto events = store_->job_events(a, 2);  // after the queued event and step 0
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(events.front().seq, 3);
  EXPECT_EQ(events.front().payload["step"], 1);
  EXPECT_EQ(store_->job_events(b).back().seq, 6);
}

TEST_F(JobsTest, CheckpointsKeepTheNewestFew) {
  JobId job = store_->submit_job({JobType::train, {}, 0, "t"}).job.id;
  EXPECT_FALSE(store_->latest_checkpoint(job));
  for (int step = 10; step <= 60; step += 10) {
    store_->save_checkpoint({job, step, std::vector<uint8_t>(100, uint8_t(step)),
                             std::vector<uint8_t>(200, 1), {}});
  }
  auto latest = store_->latest_checkpoint(job);
  ASSERT_TRUE(latest);
  EXPECT_EQ(latest->step, 60);
  EXPECT_EQ(latest->parameters, std::vector<uint8_t>(100, 60));
  EXPECT_EQ(latest->optimizer.size(), 200u);
  EXPECT_EQ(raw_query(path_, "SELECT count(*) FROM checkpoints"),
            std::to_string(store_->options().keep_checkpoints));
}

TEST_F(JobsTest, ServiceStateIsReplacedWholeAndSurvivesReopening) {
  EXPECT_FALSE(store_->load_state("scheduler.cost_model"));
  store_->save_state("scheduler.cost_model", {{"version", 1}, {"errors", {0.5, 0.25}}});
  store_->save_state("scheduler.cost_model", {{"version", 1}, {"errors", {0.125}}});
  store_->save_state("other", 3);
  store_->flush();
  store_.reset();
  store_ = Store::open(path_);
  const auto state = store_->load_state("scheduler.cost_model");
  ASSERT_TRUE(state);
  EXPECT_EQ(*state, (nlohmann::json{{"version", 1}, {"errors", {0.125}}}));
  EXPECT_EQ(store_->load_state("other"), nlohmann::json(3));
  EXPECT_EQ(raw_query(path_, "SELECT count(*) FROM service_state"), "2");
  EXPECT_NE(error_of([&] { store_->save_state("", 1); }), "");
}

TEST_F(JobsTest, ExpertsRegisterOnceWithVectorOrChecksummedFile) {
  JobId job = store_->submit_job({JobType::train, {}, 0, "t"}).job.id;
  Expert inline_expert{"math-v1", "math", "abc123", "mlp", {1, 2, 3, 4}, {}, {}, 0.61, job};
  store_->register_expert(inline_expert);
  Expert file_expert{"code-v1", "code", "abc123", "attn+mlp", {}, "/x/code.z",
                     to_hex(sha256(std::string_view("z"))), {}, {}};
  store_->register_expert(file_expert);

  auto got = store_->get_expert("math-v1");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->vector, (std::vector<uint8_t>{1, 2, 3, 4}));
  EXPECT_EQ(got->source_job, job);
  EXPECT_DOUBLE_EQ(*got->validation_accuracy, 0.61);

  auto listed = store_->list_experts();
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ(listed[1].name, "math-v1");
  EXPECT_TRUE(listed[1].vector.empty());
  EXPECT_EQ(listed[1].vector_bytes, 4);
  EXPECT_EQ(store_->list_experts(std::string("code")).size(), 1u);

  EXPECT_NE(error_of([&] { store_->register_expert(inline_expert); }).find("already exists"),
            std::string::npos);
  Expert no_checksum = file_expert;
  no_checksum.name = "x";
  no_checksum.checksum.reset();
  EXPECT_NE(error_of([&] { store_->register_expert(no_checksum); }).find("checksum"),
            std::string::npos);
  Expert orphan = inline_expert;
  orphan.name = "y";
  orphan.source_job = 12345;
  EXPECT_NE(error_of([&] { store_->register_expert(orphan); }).find("source job 12345"),
            std::string::npos);
}

TEST_F(JobsTest, MetricsReadBackInStepOrder) {
  JobId job = store_->submit_job({JobType::train, {}, 0, "t"}).job.id;
  store_->record_metric(job, "reward", 2, 0.5);
  store_->record_metric(job, "reward", 1, 0.25);
  store_->record_metric(job, "reward", 3, std::nan(""));
  store_->record_metric(job, "loss", 1, 3.0);
  store_->flush();
  auto rewards = store_->metrics(job, "reward");
  ASSERT_EQ(rewards.size(), 3u);
  EXPECT_EQ(rewards[0].step, 1);
  EXPECT_DOUBLE_EQ(rewards[1].value, 0.5);
  EXPECT_TRUE(std::isnan(rewards[2].value));
}

TEST_F(JobsTest, FailedQueuedWriteIsDroppedAloneAndCounted) {
  JobId job = store_->submit_job({JobType::train, {}, 0, "t"}).job.id;
  store_->record_metric(job, "ok", 1, 1.0);
  store_->record_metric(777, "orphan", 1, 1.0);  // no job 777: foreign key fails
  store_->record_metric(job, "ok", 2, 2.0);
  store_->flush();
  EXPECT_EQ(store_->metrics(job, "ok").size(), 2u);
  EXPECT_EQ(store_->stats().ops_failed, 1);
  EXPECT_NE(store_->stats().last_error.find("FOREIGN KEY"), std::string::npos);
}

}  // namespace
}  // namespace t2::store
