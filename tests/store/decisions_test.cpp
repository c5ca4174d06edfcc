// Decision records: every field round-trips, the prompt is kept only as its
// SHA-256 and a bounded UTF-8-safe excerpt (none when redacting), outcomes fill
// in later, and invalid records are refused before anything is queued.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>

#include "store/sha256.h"
#include "store/store.h"
#include "t2/error.h"
#include "test_util.h"

namespace t2::store {
namespace {

using test::TempDir;

NewDecision full_decision(JobId job) {
  NewDecision d;
  d.kind = DecisionKind::request;
  d.time = parse_time("2024-05-01T12:00:00.5Z", now());
  d.job = job;
  d.request_id = "req-1";
  d.task = "math";
  d.strategy = "classifier";
  d.first_pass = {{"label", "math"}, {"p", 0.93}};
  d.experts = {{"math", 0.75}, {"code", 0.25}};
  d.depth = 24;
  d.rank = 2;
  d.estimated_cost = 1.5;
  d.first_pass_ms = 12.5;
  d.second_pass_ms = 80.25;
  d.prompt = "What is 2 + 2?";
  return d;
}

TEST(Decisions, EveryFieldRoundTrips) {
  TempDir dir;
  auto store = Store::open(dir.file("t2.db"));
  JobId job = store->submit_job({JobType::generate, {}, 0, "g"}).job.id;
  NewDecision in = full_decision(job);
  DecisionId id = store->record_decision(in);
  store->flush();

  auto out = store->audit().get(id);
  ASSERT_TRUE(out);
  EXPECT_EQ(out->time, *in.time);
  EXPECT_EQ(out->kind, DecisionKind::request);
  EXPECT_EQ(out->job, job);
  EXPECT_EQ(out->request_id, "req-1");
  EXPECT_EQ(out->task, "math");
  EXPECT_EQ(out->strategy, "classifier");
  EXPECT_EQ(out->first_pass, in.first_pass);
  ASSERT_EQ(out->experts.size(), 2u);
  EXPECT_EQ(out->experts[1].name, "code");  // in the order given
  EXPECT_DOUBLE_EQ(out->experts[1].weight, 0.25);
  EXPECT_EQ(out->depth, 24);
  EXPECT_EQ(out->rank, 2);
  EXPECT_EQ(out->estimated_cost, 1.5);
  EXPECT_FALSE(out->measured_cost);
  EXPECT_EQ(out->first_pass_ms, 12.5);
  EXPECT_EQ(out->second_pass_ms, 80.25);
  EXPECT_EQ(out->prompt_sha256, to_hex(sha256(std::string_view(in.prompt))));
  EXPECT_EQ(out->prompt_excerpt, in.prompt);
}

TEST(Decisions, CompleteFillsOnlyWhatTheOutcomeHolds) {
  TempDir dir;
  auto store = Store::open(dir.file("t2.db"));
  DecisionId id = store->record_decision(full_decision(store->submit_job({}).job.id));
  store->complete_decision(id, {2.75, std::nullopt, 95.0, std::nullopt});
  store->complete_decision(id + 100, {1.0, {}, {}, {}});  // unknown: logged, dropped
  store->flush();
  auto out = store->audit().get(id);
  EXPECT_EQ(out->measured_cost, 2.75);
  EXPECT_EQ(out->first_pass_ms, 12.5);
  EXPECT_EQ(out->second_pass_ms, 95.0);
  EXPECT_EQ(out->depth, 24);
  EXPECT_EQ(store->stats().ops_failed, 1);
}

TEST(Decisions, ExcerptIsBoundedOnACharacterBoundary) {
  TempDir dir;
  Options options;
  options.excerpt_bytes = 10;
  auto store = Store::open(dir.file("t2.db"), options);
  NewDecision d;
  d.strategy = "none";
  d.prompt = "abcdefghi\u00e9 and more";  // the 2-byte e-acute is bytes 10-11
  DecisionId id = store->record_decision(d);
  store->flush();
  auto out = store->audit().get(id);
  EXPECT_EQ(out->prompt_excerpt, "abcdefghi");
  EXPECT_EQ(out->prompt_sha256, to_hex(sha256(std::string_view(d.prompt))));
}

TEST(Decisions, RedactionKeepsOnlyTheHash) {
  TempDir dir;
  Options options;
  options.redact_prompts = true;
  auto store = Store::open(dir.file("t2.db"), options);
  NewDecision d;
  d.strategy = "none";
  d.prompt = "secret patient record";
  DecisionId id = store->record_decision(d);
  store->flush();
  auto out = store->audit().get(id);
  EXPECT_FALSE(out->prompt_excerpt);
  EXPECT_EQ(out->prompt_sha256, to_hex(sha256(std::string_view(d.prompt))));
  store.reset();  // closed: the WAL is checkpointed, and no lock is held while we read
  EXPECT_EQ(test::read_all(dir.file("t2.db")).find("secret patient"), std::string::npos);
}

TEST(Decisions, InvalidRecordsAreRefusedBeforeQueueing) {
  TempDir dir;
  auto store = Store::open(dir.file("t2.db"));
  NewDecision no_strategy;
  EXPECT_THROW(store->record_decision(no_strategy), Error);

  NewDecision twice;
  twice.strategy = "mix";
  twice.experts = {{"math", 0.5}, {"math", 0.5}};
  EXPECT_THROW(store->record_decision(twice), Error);

  NewDecision nan_weight;
  nan_weight.strategy = "mix";
  nan_weight.experts = {{"math", std::nan("")}};
  EXPECT_THROW(store->record_decision(nan_weight), Error);

  NewDecision inf_cost;
  inf_cost.strategy = "mix";
  inf_cost.estimated_cost = INFINITY;
  EXPECT_THROW(store->record_decision(inf_cost), Error);

  store->flush();
  EXPECT_EQ(store->audit().count({}), 0);
  EXPECT_EQ(store->stats().ops_failed, 0);
}

TEST(Sha256, MatchesKnownVectors) {
  EXPECT_EQ(to_hex(sha256(std::string_view(""))),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(to_hex(sha256(std::string_view("abc"))),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(to_hex(sha256(std::string_view(
                "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"))),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(to_hex(sha256(std::string(1000000, 'a'))),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, CpuPathMatchesPortablePath) {
  std::mt19937 rng(99);
  for (size_t length = 0; length < 700; length += 1 + length / 8) {
    std::vector<uint8_t> data(length);
    for (auto& byte : data) byte = static_cast<uint8_t>(rng());
    ASSERT_EQ(sha256(data), sha256_portable(data)) << "length " << length;
  }
  std::printf("sha256 uses CPU extensions: %s\n", sha256_uses_cpu_extensions() ? "yes" : "no");
}

}  // namespace
}  // namespace t2::store
