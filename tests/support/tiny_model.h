// Test and benchmark fixtures written at run time: a byte-level tokenizer of
// exactly 256 tokens (one per byte) and the tiny Llama fixture beside it, so
// that text datasets run on tests/fixtures/models/llama (vocabulary 256).
#ifndef LASERD_TESTS_SUPPORT_TINY_MODEL_H_
#define LASERD_TESTS_SUPPORT_TINY_MODEL_H_

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"

namespace laserd::test_support {

// GPT-2's byte-to-unicode map: the byte-level alphabet character of byte b, UTF-8.
inline std::string ByteLevelChar(int b) {
  std::vector<int> bs;
  for (int i = '!'; i <= '~'; ++i) bs.push_back(i);
  for (int i = 0xA1; i <= 0xAC; ++i) bs.push_back(i);
  for (int i = 0xAE; i <= 0xFF; ++i) bs.push_back(i);
  int n = 0, cp = -1;
  for (int x = 0; x < 256; ++x) {
    const bool direct = std::find(bs.begin(), bs.end(), x) != bs.end();
    const int c = direct ? x : 256 + n++;
    if (x == b) cp = c;
  }
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

// A tokenizer.json: byte-level BPE over the 256 byte tokens, no merges, no BOS.
inline nlohmann::json ByteLevelTokenizerJson() {
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) vocab[ByteLevelChar(b)] = b;
  const nlohmann::json bl = {{"type", "ByteLevel"},
                             {"add_prefix_space", false},
                             {"trim_offsets", true},
                             {"use_regex", true}};
  return {{"version", "1.0"},
          {"truncation", nullptr},
          {"padding", nullptr},
          {"added_tokens", nlohmann::json::array()},
          {"normalizer", nullptr},
          {"pre_tokenizer", bl},
          {"post_processor", bl},
          {"decoder", bl},
          {"model",
           {{"type", "BPE"},
            {"dropout", nullptr},
            {"unk_token", nullptr},
            {"continuing_subword_prefix", nullptr},
            {"end_of_word_suffix", nullptr},
            {"fuse_unk", false},
            {"byte_fallback", false},
            {"ignore_merges", false},
            {"vocab", vocab},
            {"merges", nlohmann::json::array()}}}};
}

inline void WriteByteLevelTokenizer(const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "tokenizer.json") << ByteLevelTokenizerJson().dump();
}

#ifdef LASERD_SOURCE_DIR
// dir: the tiny Llama fixture (config.json, model.safetensors) and the
// byte-level tokenizer.json.
inline void MakeTinyLlamaDir(const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  fs::create_directories(dir);
  const fs::path src = fs::path(LASERD_SOURCE_DIR) / "tests/fixtures/models/llama";
  for (const char* f : {"config.json", "model.safetensors"}) {
    fs::copy_file(src / f, dir / f, fs::copy_options::overwrite_existing);
  }
  WriteByteLevelTokenizer(dir);
}
#endif

}  // namespace laserd::test_support

#endif  // LASERD_TESTS_SUPPORT_TINY_MODEL_H_
