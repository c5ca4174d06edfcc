// The Wilson 95 % interval against reference values (the textbook formula
// evaluated in Python to five digits), and its bounds over a grid of counts.
#include <gtest/gtest.h>

#include "adaptation/evaluate.h"

namespace t2::adaptation {
namespace {

TEST(Wilson, KnownValues) {
  struct Row {
    int64_t k, n;
    double low, high;
  };
  const Row rows[] = {
      {0, 10, 0.0, 0.27753},   {10, 10, 0.72247, 1.0},  {5, 10, 0.23659, 0.76341},
      {3, 16, 0.06592, 0.43009}, {50, 100, 0.40383, 0.59617},
  };
  for (const auto& r : rows) {
    const Interval ci = wilson_interval(r.k, r.n);
    EXPECT_NEAR(ci.low, r.low, 1e-4) << r.k << "/" << r.n;
    EXPECT_NEAR(ci.high, r.high, 1e-4) << r.k << "/" << r.n;
  }
}

TEST(Wilson, EmptyAndBounds) {
  const Interval none = wilson_interval(0, 0);
  EXPECT_EQ(none.low, 0.0);
  EXPECT_EQ(none.high, 1.0);
  for (int64_t n = 1; n <= 50; ++n) {
    for (int64_t k = 0; k <= n; ++k) {
      const Interval ci = wilson_interval(k, n);
      const double p = double(k) / double(n);
      ASSERT_LE(ci.low, p + 1e-12);
      ASSERT_GE(ci.high, p - 1e-12);
      ASSERT_GE(ci.low, 0.0);
      ASSERT_LE(ci.high, 1.0);
    }
  }
}

}  // namespace
}  // namespace t2::adaptation
