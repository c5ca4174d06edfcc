// RunningMean: the mean of a stream that turns into an exponential moving average
// once `window` values have arrived, so it starts exact and then tracks drift.
// Invariant: count is the number of values seen; mean is meaningless while 0.
#pragma once

#include <algorithm>
#include <cstdint>

namespace t2::scheduler {

struct RunningMean {
  double mean = 0;
  std::uint64_t count = 0;

  void add(double value, std::uint64_t window) {
    ++count;
    mean += (value - mean) / static_cast<double>(std::min<std::uint64_t>(count, window));
  }
};

}  // namespace t2::scheduler
