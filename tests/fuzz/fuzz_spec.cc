// libFuzzer: sweep spec file bytes (laserd sweep --spec, laserctl submit --spec)
// -> proto::ParseSweepSpecText, YAML or JSON. Any input must give a spec or an
// INVALID_ARGUMENT status that names the source, never a crash.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "proto/spec_io.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto spec = laserd::proto::ParseSweepSpecText(text, "spec");
  if (!spec.ok()) {
    if (spec.status().code() != absl::StatusCode::kInvalidArgument) abort();
    if (spec.status().message().rfind("spec: ", 0) != 0) abort();  // names the source
  }
  return 0;
}
