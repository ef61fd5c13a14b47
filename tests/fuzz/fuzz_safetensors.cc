// libFuzzer target: the safetensors reader on arbitrary bytes (one file image, from
// memory). Opens it and converts every tensor to fp32. Any crash, sanitizer report,
// leak or timeout is a finding.
#include <cstddef>
#include <cstdint>

#include "engine/formats/internal.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace laserd::formats;
  auto src = internal::OpenSafetensorsBytes("fuzz.safetensors", internal::CopyBytes(data, size));
  if (!src.ok()) {
    (void)src.status().ToString();
    return 0;
  }
  for (const TensorInfo& t : (*src)->tensors()) {
    auto r = (*src)->LoadF32(t.name);
    if (r.ok() && static_cast<int64_t>(r->data.size()) != t.NumElements()) __builtin_trap();
  }
  return 0;
}
