// libFuzzer target: the GGUF reader on arbitrary bytes. Opens the image from memory,
// serializes its metadata and dequantizes every tensor. Any crash, sanitizer report,
// leak or timeout is a finding.
#include <cstddef>
#include <cstdint>

#include "engine/formats/internal.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace laserd::formats;
  auto src = internal::OpenGgufBytes("fuzz.gguf", internal::CopyBytes(data, size));
  if (!src.ok()) {
    (void)src.status().ToString();
    return 0;
  }
  (void)(*src)->metadata().dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  for (const TensorInfo& t : (*src)->tensors()) {
    auto r = (*src)->LoadF32(t.name);
    if (r.ok() && static_cast<int64_t>(r->data.size()) != t.NumElements()) __builtin_trap();
  }
  return 0;
}
