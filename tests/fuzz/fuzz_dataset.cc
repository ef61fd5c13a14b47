// libFuzzer: dataset upload bytes (UploadDataset hands the whole upload to
// eval::ParseDataset) -> parse. Any input must give a dataset or an error
// status naming a line, never a crash; a parsed dataset must satisfy the
// invariants the scorer relies on.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "engine/eval/dataset.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto ds = laserd::eval::ParseDataset(text, "upload");
  if (!ds.ok()) {
    if (ds.status().message().empty()) abort();  // every error says what is wrong
    return 0;
  }
  if (ds->examples.empty()) abort();  // an empty dataset is an error
  for (const auto& ex : ds->examples) {
    if (ex.kind == laserd::eval::ExampleKind::kCompletion) {
      if (ex.answer.empty()) abort();
    } else {
      if (ex.choices.size() < 2) abort();
      if (ex.label < 0 || ex.label >= static_cast<int64_t>(ex.choices.size())) abort();
    }
  }
  return 0;
}
