// Settings of a Store, with defaults that favour durability: every commit is
// fsynced, the file is checked before use, and prompt excerpts stay bounded.
#pragma once

#include <cstddef>

namespace t2::store {

// What opening checks about an existing file before anything writes to it.
enum class OpenCheck {
  none,   // header, version and ownership only
  quick,  // plus PRAGMA quick_check (pages and records; O(size), no index cross-check)
  full,   // plus PRAGMA integrity_check (also every index against its table)
};

struct Options {
  // true: synchronous=FULL, a returned commit survives power loss.
  // false: synchronous=NORMAL, it survives a crash of the process only.
  bool fsync_each_commit = true;
  int busy_timeout_ms = 5000;
  OpenCheck open_check = OpenCheck::quick;

  // Decisions keep the prompt's SHA-256 always, and its first excerpt_bytes
  // (cut on a UTF-8 boundary) unless redact_prompts is set.
  bool redact_prompts = false;
  size_t excerpt_bytes = 256;

  int keep_checkpoints = 3;      // per job; older ones are deleted on save
  size_t max_batch = 4096;       // queued ops per transaction
  size_t max_queue = 100'000;    // producers wait beyond this many queued ops
  int writer_cache_mib = 64;     // page cache of the write connection
};

}  // namespace t2::store
