// libFuzzer: tokenizer.json bytes -> load -> encode/decode a few strings. Any
// input must give either a tokenizer or an error status, never a crash, and a
// loaded tokenizer must encode valid text to in-range ids.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "engine/tokenizer/internal.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto tok = laserd::tokenizer::internal::LoadTokenizerJsonString(text, nullptr, "fuzz");
  if (!tok.ok()) return 0;
  static const char* kInputs[] = {"Hello world",
                                  "  multiple   spaces\tand tabs ",
                                  "don't 1234567 x²",
                                  "日本語 Привет 😀👨‍👩‍👧",
                                  "",
                                  "\n\r\n",
                                  "<s> </s> <|endoftext|>",
                                  "▁▁a"};
  for (const char* s : kInputs) {
    for (bool special : {false, true}) {
      auto ids = (*tok)->Encode(s, special);
      if (!ids.ok()) continue;
      for (int32_t id : *ids) {
        if (id < 0 || id >= (*tok)->vocab_size()) abort();  // ids must be in range
      }
      (void)(*tok)->Decode(*ids);
    }
  }
  (void)(*tok)->Encode(std::string("\xC3(", 2), false);  // invalid UTF-8 -> error, no crash
  return 0;
}
