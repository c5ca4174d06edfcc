// comm::Channel under mpirun -n 3: envelopes between every pair, ordered per
// pair; an all-reduce over workers 1 and 2 while rank 0 keeps messaging; an
// aborted all-reduce fails its future instead of hanging. Every rank runs the
// same tests; each asserts what it should see.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "comm/channel.h"
#include "comm/mpi_check.h"
#include "t2/error.h"

namespace t2::comm {
namespace {

Session* g_session = nullptr;

// Polls until `done` or the deadline; messages go to `sink`.
template <typename Pred>
bool pump(Channel& ch, std::vector<Incoming>& sink, Pred done, double seconds = 20) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (!done()) {
    if (std::chrono::steady_clock::now() > until) return false;
    if (!ch.poll([&](Incoming&& in) { sink.push_back(std::move(in)); }))
      std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return true;
}

TEST(Channel, EveryPairExchangesOrderedEnvelopes) {
  Channel ch(*g_session);
  const int n = ch.size(), me = ch.rank();
  constexpr int kPerPeer = 20;
  for (int i = 0; i < kPerPeer; ++i)
    for (int peer = 0; peer < n; ++peer) {
      if (peer == me) continue;
      Envelope e;
      e.kind = Kind::kProgress;
      e.body = {{"from", me}, {"seq", i}};
      std::vector<float> blob(size_t(i) * 1000, float(me));  // up to 76 KiB: rendezvous too
      e.set_blob_floats(blob);
      ch.post(peer, std::move(e));
    }
  std::vector<Incoming> got;
  ASSERT_TRUE(pump(ch, got, [&] { return got.size() == size_t(kPerPeer * (n - 1)); }));
  std::vector<int> next(size_t(n), 0);
  for (const Incoming& in : got) {
    EXPECT_EQ(in.envelope.body["from"], in.source);
    EXPECT_EQ(in.envelope.body["seq"], next[size_t(in.source)]++);  // per-pair order kept
    EXPECT_EQ(in.envelope.blob.size(), size_t(in.envelope.body["seq"].get<int>()) * 4000);
  }
  ASSERT_TRUE(ch.drain(10, [](Incoming&&) {}));
  MPI_Barrier(MPI_COMM_WORLD);
}

TEST(Channel, AllreduceOverWorkersWhileRankZeroTalks) {
  Channel ch(*g_session);
  const int me = ch.rank();
  std::vector<Incoming> got;
  if (me == 0) {
    for (int i = 0; i < 5; ++i) ch.post(1, Envelope{Kind::kHeartbeat, {{"i", i}}, {}});
    ASSERT_TRUE(pump(ch, got, [&] { return got.size() == 2; }));
    for (const Incoming& in : got) {
      EXPECT_EQ(in.envelope.kind, Kind::kResult);
      EXPECT_FLOAT_EQ(in.envelope.body["first"].get<float>(), 3.0f);  // 1 + 2
    }
  } else {
    std::vector<float> data(50000, float(me));
    data[0] = float(me);
    // Another thread asks, as the worker's compute thread does.
    std::future<AllreduceResult> sum;
    std::thread asker([&] { sum = ch.allreduce_sum(42, {1, 2}, data); });
    asker.join();
    ASSERT_TRUE(pump(ch, got, [&] {
      return sum.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
    }));
    const AllreduceResult r = sum.get();
    ASSERT_EQ(r.sum.size(), data.size());
    for (float v : r.sum) ASSERT_FLOAT_EQ(v, 3.0f);
    ch.post(0, Envelope{Kind::kResult, {{"first", r.sum[0]}}, {}});
    ASSERT_TRUE(ch.drain(10, [&](Incoming&& in) { got.push_back(std::move(in)); }));
    if (me == 1) {
      ASSERT_TRUE(pump(ch, got, [&] { return got.size() == 5; }));
    }
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

TEST(Channel, AbortedAllreduceFailsInsteadOfHanging) {
  Channel ch(*g_session);
  std::vector<Incoming> got;
  if (ch.rank() == 1) {
    // Rank 2 never joins the sum: abort it, as a worker does when a peer is lost.
    ch.prepare_group(77, {1, 2});  // rank 2 creates it too, so creation returns
    auto sum = ch.allreduce_sum(77, {1, 2}, std::vector<float>(10, 1.0f));
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(200);
    pump(ch, got, [&] { return std::chrono::steady_clock::now() > until; });  // it starts
    EXPECT_EQ(sum.wait_for(std::chrono::seconds(0)), std::future_status::timeout);
    ch.abort_allreduce(77);
    ASSERT_TRUE(pump(ch, got, [&] {
      return sum.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
    }));
    EXPECT_THROW(sum.get(), Error);
    auto again = ch.allreduce_sum(77, {1, 2}, {1.0f});
    EXPECT_THROW(again.get(), Error);  // an aborted key stays aborted
    EXPECT_TRUE(ch.has_abandoned_collectives());
  } else if (ch.rank() == 2) {
    ch.prepare_group(77, {1, 2});
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

TEST(Channel, RefusesBadGroupsAndRanks) {
  Channel ch(*g_session);
  EXPECT_THROW(ch.post(ch.size(), Envelope{}), Error);
  EXPECT_THROW(ch.allreduce_sum(1, {2, 1}, {}), Error);
  EXPECT_THROW(ch.allreduce_sum(1, {ch.rank() == 0 ? 1 : 0}, {}), Error);
}

TEST(MpiCheck, ReportsCallFileLineAndRank) {
  try {
    int x = 0;
    T2_MPI_CHECK(MPI_Send(&x, 1, MPI_INT, 99, 0, MPI_COMM_WORLD));
    FAIL() << "expected a throw";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("MPI_Send"), std::string::npos) << what;
    EXPECT_NE(what.find("channel_mpi_test.cpp:"), std::string::npos) << what;
    EXPECT_NE(what.find("on rank " + std::to_string(g_session->rank())), std::string::npos);
  }
}

}  // namespace
}  // namespace t2::comm

int main(int argc, char** argv) {
  t2::comm::Session session(&argc, &argv);
  t2::comm::g_session = &session;
  ::testing::InitGoogleTest(&argc, argv);
  if (session.rank() != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  const int failed = RUN_ALL_TESTS();
  // Every rank's verdict decides: a failure anywhere fails the run.
  int any = failed, all = 0;
  MPI_Allreduce(&any, &all, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  return all;
}
