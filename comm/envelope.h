// comm::Envelope — every message between ranks: a kind, a JSON body (ids,
// texts, settings) and an optional binary blob (f32 vectors: expert parameters,
// optimizer state). Wire form: a 16-byte header (magic "T2EV", version, kind,
// body and blob lengths, little-endian), the body as UTF-8 JSON, then the blob.
// decode() accepts only what encode() makes; anything else throws t2::Error.
#pragma once

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace t2::comm {

// The protocol between the coordinator (rank 0) and the workers.
enum class Kind : uint16_t {
  kHello = 1,       // worker -> 0: ready; rank, pid, host, model facts
  kHeartbeat = 2,   // worker -> 0: alive; load and speed figures
  kShard = 3,       // 0 -> worker: run an inference shard
  kTrainStep = 4,   // 0 -> worker: run one rank's slice of a training step
  kResult = 5,      // worker -> 0: a shard or step slice finished
  kFailed = 6,      // worker -> 0: a shard or step slice failed (message says why)
  kCancel = 7,      // 0 -> worker: drop a placement (queued or running)
  kShutdown = 8,    // 0 -> worker: finish nothing more, leave
  kProgress = 9,    // worker -> 0: a running shard's partial progress
  kExpertCheck = 10,  // 0 -> worker: load and check an expert file, send its vector back
  kExpertData = 11,   // worker -> 0: what kExpertCheck found
};
std::string_view kind_name(Kind kind);

struct Envelope {
  Kind kind = Kind::kHeartbeat;
  nlohmann::json body = nlohmann::json::object();
  std::vector<std::byte> blob;

  // The blob as f32 values (copy); throws unless its size is a multiple of 4.
  std::vector<float> blob_floats() const;
  void set_blob_floats(std::span<const float> values);
};

constexpr uint32_t kEnvelopeMagic = 0x56453254;  // "T2EV" read as little-endian
constexpr uint16_t kEnvelopeVersion = 1;
constexpr size_t kEnvelopeHeaderBytes = 16;
constexpr size_t kMaxEnvelopeBytes = size_t(1) << 30;

std::vector<std::byte> encode(const Envelope& envelope);
Envelope decode(std::span<const std::byte> bytes);

}  // namespace t2::comm
