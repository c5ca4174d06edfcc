// Envelope wire form (see envelope.h). Fields are written byte by byte in
// little-endian order, so ranks agree whatever their alignment rules.
#include "comm/envelope.h"

#include <cstring>

#include "t2/error.h"

namespace t2::comm {
namespace {

void put_u32(std::byte* at, uint32_t v) {
  for (int i = 0; i < 4; ++i) at[i] = std::byte((v >> (8 * i)) & 0xff);
}
void put_u16(std::byte* at, uint16_t v) {
  at[0] = std::byte(v & 0xff);
  at[1] = std::byte(v >> 8);
}
uint32_t get_u32(const std::byte* at) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= uint32_t(at[i]) << (8 * i);
  return v;
}
uint16_t get_u16(const std::byte* at) { return uint16_t(uint16_t(at[0]) | uint16_t(at[1]) << 8); }

}  // namespace

std::string_view kind_name(Kind kind) {
  switch (kind) {
    case Kind::kHello: return "hello";
    case Kind::kHeartbeat: return "heartbeat";
    case Kind::kShard: return "shard";
    case Kind::kTrainStep: return "train_step";
    case Kind::kResult: return "result";
    case Kind::kFailed: return "failed";
    case Kind::kCancel: return "cancel";
    case Kind::kShutdown: return "shutdown";
    case Kind::kProgress: return "progress";
    case Kind::kExpertCheck: return "expert_check";
    case Kind::kExpertData: return "expert_data";
  }
  return "unknown";
}

std::vector<float> Envelope::blob_floats() const {
  if (blob.size() % sizeof(float) != 0)
    fail("envelope blob of {} bytes is not a whole number of f32 values", blob.size());
  std::vector<float> out(blob.size() / sizeof(float));
  if (!out.empty()) std::memcpy(out.data(), blob.data(), blob.size());
  return out;
}

void Envelope::set_blob_floats(std::span<const float> values) {
  blob.resize(values.size_bytes());
  if (!values.empty()) std::memcpy(blob.data(), values.data(), values.size_bytes());
}

std::vector<std::byte> encode(const Envelope& envelope) {
  // A default-constructed body ({} in an initializer list is null) is sent as {}.
  const std::string body = envelope.body.is_null()
                               ? std::string("{}")
                               : envelope.body.dump(-1, ' ', false,
                                                    nlohmann::json::error_handler_t::replace);
  const size_t total = kEnvelopeHeaderBytes + body.size() + envelope.blob.size();
  if (total > kMaxEnvelopeBytes)
    fail("envelope '{}' of {} bytes is over the {} byte limit", kind_name(envelope.kind), total,
         kMaxEnvelopeBytes);
  std::vector<std::byte> out(total);
  put_u32(out.data(), kEnvelopeMagic);
  put_u16(out.data() + 4, kEnvelopeVersion);
  put_u16(out.data() + 6, uint16_t(envelope.kind));
  put_u32(out.data() + 8, uint32_t(body.size()));
  put_u32(out.data() + 12, uint32_t(envelope.blob.size()));
  std::memcpy(out.data() + kEnvelopeHeaderBytes, body.data(), body.size());
  if (!envelope.blob.empty())
    std::memcpy(out.data() + kEnvelopeHeaderBytes + body.size(), envelope.blob.data(),
                envelope.blob.size());
  return out;
}

Envelope decode(std::span<const std::byte> bytes) {
  if (bytes.size() < kEnvelopeHeaderBytes)
    fail("envelope of {} bytes is shorter than its {} byte header", bytes.size(),
         kEnvelopeHeaderBytes);
  const uint32_t magic = get_u32(bytes.data());
  if (magic != kEnvelopeMagic)
    fail("envelope magic is {:#010x}, expected {:#010x} (\"T2EV\"): not a t2 message",
         magic, kEnvelopeMagic);
  const uint16_t version = get_u16(bytes.data() + 4);
  if (version != kEnvelopeVersion)
    fail("envelope version {} (this build speaks {}): run the same t2 on every rank", version,
         kEnvelopeVersion);
  const uint16_t kind = get_u16(bytes.data() + 6);
  if (kind < uint16_t(Kind::kHello) || kind > uint16_t(Kind::kExpertData))
    fail("envelope kind {} is unknown", kind);
  const uint64_t body_bytes = get_u32(bytes.data() + 8);
  const uint64_t blob_bytes = get_u32(bytes.data() + 12);
  if (kEnvelopeHeaderBytes + body_bytes + blob_bytes != bytes.size())
    fail("envelope says {} + {} bytes follow its header, but {} do", body_bytes, blob_bytes,
         bytes.size() - kEnvelopeHeaderBytes);

  Envelope out;
  out.kind = Kind(kind);
  const char* body = reinterpret_cast<const char*>(bytes.data() + kEnvelopeHeaderBytes);
  out.body = nlohmann::json::parse(body, body + body_bytes, nullptr, false);
  if (out.body.is_discarded() || !out.body.is_object())
    fail("envelope '{}' body is not a JSON object", kind_name(out.kind));
  out.blob.assign(bytes.begin() + std::ptrdiff_t(kEnvelopeHeaderBytes + body_bytes),
                  bytes.end());
  return out;
}

}  // namespace t2::comm
