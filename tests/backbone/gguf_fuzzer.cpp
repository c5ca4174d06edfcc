// libFuzzer entry for the GGUF reader (cmake -DT2_FUZZ=ON with clang):
//   build/tests/backbone/gguf_fuzzer -max_len=65536 corpus/
// Any input must parse or throw t2::Error; the sanitizers catch the rest.
#include <cstddef>
#include <cstdint>
#include <span>

#include "backbone/gguf.h"
#include "t2/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    t2::backbone::GgufFile f(std::span(reinterpret_cast<const std::byte*>(data), size), "fuzz");
    for (const t2::backbone::TensorInfo& t : f.tensors()) {
      if (t.n_elements() <= (1 << 16)) f.dequantize(t);
    }
  } catch (const t2::Error&) {
  }
  return 0;
}
