// Envelope wire form: round trips, and every malformed header or body refused.
#include <gtest/gtest.h>

#include "comm/envelope.h"
#include "t2/error.h"

namespace t2::comm {
namespace {

Envelope sample() {
  Envelope e;
  e.kind = Kind::kShard;
  e.body = {{"placement", 7}, {"prompts", {"héllo", "wörld"}}};
  const std::vector<float> p = {1.5f, -2.0f, 3.25f};
  e.set_blob_floats(p);
  return e;
}

TEST(Envelope, RoundTripsBodyAndBlob) {
  const Envelope in = sample();
  const auto bytes = encode(in);
  EXPECT_EQ(bytes.size(), kEnvelopeHeaderBytes + in.body.dump().size() + 12);
  const Envelope out = decode(bytes);
  EXPECT_EQ(out.kind, Kind::kShard);
  EXPECT_EQ(out.body, in.body);
  EXPECT_EQ(out.blob_floats(), (std::vector<float>{1.5f, -2.0f, 3.25f}));
}

TEST(Envelope, EmptyBlobAndEveryKindRoundTrip) {
  for (int k = int(Kind::kHello); k <= int(Kind::kExpertData); ++k) {
    Envelope e;
    e.kind = Kind(k);
    const Envelope out = decode(encode(e));
    EXPECT_EQ(out.kind, e.kind);
    EXPECT_TRUE(out.blob.empty());
    EXPECT_NE(kind_name(e.kind), "unknown");
  }
}

TEST(Envelope, RefusesMalformedBytes) {
  const auto good = encode(sample());
  auto expect_refused = [](std::vector<std::byte> bytes, const char* why) {
    EXPECT_THROW(decode(bytes), Error) << why;
  };
  expect_refused({}, "empty");
  expect_refused({good.begin(), good.begin() + 10}, "short header");
  auto bad = good;
  bad[0] = std::byte{'X'};
  expect_refused(bad, "magic");
  bad = good;
  bad[4] = std::byte{9};
  expect_refused(bad, "version");
  bad = good;
  bad[6] = std::byte{99};
  expect_refused(bad, "kind");
  bad = good;
  bad.pop_back();
  expect_refused(bad, "truncated blob");
  bad = good;
  bad.push_back(std::byte{0});
  expect_refused(bad, "trailing byte");
  bad = good;
  bad[kEnvelopeHeaderBytes] = std::byte{'['};
  expect_refused(bad, "body not an object");
}

TEST(Envelope, OddBlobIsNotFloats) {
  Envelope e;
  e.blob.resize(5);
  EXPECT_THROW(e.blob_floats(), Error);
}

}  // namespace
}  // namespace t2::comm
