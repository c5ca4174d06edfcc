// SHA-256 (FIPS 180-4) for prompt fingerprints and expert file checksums; the
// store keeps hashes, not prompts, so audits can match a prompt without holding it.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace t2::store {

std::array<uint8_t, 32> sha256(std::span<const uint8_t> data);
std::array<uint8_t, 32> sha256(std::string_view text);
// The reference path, whatever the CPU offers; for tests and benchmarks.
std::array<uint8_t, 32> sha256_portable(std::span<const uint8_t> data);
bool sha256_uses_cpu_extensions();
std::string to_hex(std::span<const uint8_t> bytes);

}  // namespace t2::store
