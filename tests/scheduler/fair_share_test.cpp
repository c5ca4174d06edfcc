// The fair sojourn protocol: hand-computed virtual finish times and order.
#include "scheduler/fair_share.h"

#include <gtest/gtest.h>

namespace t2::scheduler {
namespace {

TEST(FairShare, SmallJobGoesBeforeBigOneThatArrivedTogether) {
  FairShare f;
  f.set_capacity(2, 0);
  f.add(1, 0, 1.0, 10, 0);  // F = 0 + 10
  f.add(2, 0, 1.0, 2, 0);   // F = 0 + 2
  EXPECT_DOUBLE_EQ(f.virtual_finish(1), 10);
  EXPECT_DOUBLE_EQ(f.virtual_finish(2), 2);
  EXPECT_EQ(f.top(), 2u);
}

TEST(FairShare, LateArrivalStartsAtCurrentVirtualTime) {
  // Capacity 2 shared by two jobs: virtual time runs at 1/s until job 2 leaves
  // the virtual cluster at V = 2 (t = 2), then at 2/s: V(4) = 2 + 2 * 2 = 6.
  FairShare f;
  f.set_capacity(2, 0);
  f.add(1, 0, 1.0, 10, 0);
  f.add(2, 0, 1.0, 2, 0);
  f.add(3, 0, 1.0, 1, 4);
  EXPECT_DOUBLE_EQ(f.virtual_finish(3), 7);
  f.forget(2, false);
  EXPECT_EQ(f.top(), 3u);  // 7 < 10: the newcomer is not stuck behind the big job
  f.forget(3, false);
  EXPECT_EQ(f.top(), 1u);
}

TEST(FairShare, WeightScalesTheShare) {
  FairShare f;
  f.set_capacity(1, 0);
  f.add(1, 0, 1.0, 6, 0);  // F = 6
  f.add(2, 0, 4.0, 8, 0);  // F = 8 / 4 = 2
  EXPECT_EQ(f.top(), 2u);
  EXPECT_DOUBLE_EQ(f.sharing_weight(0, 0), 5);
}

TEST(FairShare, HigherPriorityAlwaysFirst) {
  FairShare f;
  f.set_capacity(1, 0);
  f.add(1, 0, 1.0, 1, 0);
  f.add(2, 5, 1.0, 100, 0);
  EXPECT_EQ(f.top(), 2u);
}

TEST(FairShare, TiesGoToLowerIdAndInactiveJobsWait) {
  FairShare f;
  f.set_capacity(1, 0);
  f.add(8, 0, 1.0, 3, 0);
  f.add(4, 0, 1.0, 3, 0);
  EXPECT_EQ(f.top(), 4u);
  f.deactivate(4);
  EXPECT_EQ(f.top(), 8u);
  f.activate(4);
  EXPECT_EQ(f.top(), 4u);
}

TEST(FairShare, CancelledJobLeavesTheVirtualCluster) {
  FairShare f;
  f.set_capacity(1, 0);
  f.add(1, 0, 1.0, 100, 0);
  f.add(2, 0, 1.0, 100, 0);
  f.forget(1, true);
  EXPECT_DOUBLE_EQ(f.sharing_weight(0, 0), 1);
  f.forget(2, false);  // finished: still shares the virtual cluster until V = 100
  EXPECT_DOUBLE_EQ(f.sharing_weight(0, 50), 1);
  EXPECT_DOUBLE_EQ(f.sharing_weight(0, 101), 0);
  EXPECT_TRUE(f.empty());
  EXPECT_FALSE(f.top().has_value());
}

}  // namespace
}  // namespace t2::scheduler
