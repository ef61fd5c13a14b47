// Test and benchmark fixtures written at run time: a byte-level tokenizer of
// exactly 256 tokens (one per byte) and the tiny Llama fixture beside it, so
// that text datasets run on tests/fixtures/models/llama (vocabulary 256); a
// capitals-like dataset; running the laserd binary and reading its files.
#ifndef LASERD_TESTS_SUPPORT_FIXTURES_H_
#define LASERD_TESTS_SUPPORT_FIXTURES_H_

#include <sys/wait.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
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
// dir: a tiny Llama fixture of tests/fixtures/models (config.json,
// model.safetensors; `model` "llama" by default, or e.g. "llama_float16") and
// the byte-level tokenizer.json.
inline void MakeTinyLlamaDir(const std::filesystem::path& dir, const std::string& model = "llama") {
  namespace fs = std::filesystem;
  fs::create_directories(dir);
  const fs::path src = fs::path(LASERD_SOURCE_DIR) / "tests/fixtures/models" / model;
  for (const char* f : {"config.json", "model.safetensors"}) {
    fs::copy_file(src / f, dir / f, fs::copy_options::overwrite_existing);
  }
  WriteByteLevelTokenizer(dir);
}
#endif

// Ten JSONL examples for the tiny model: completions and choices, several
// sharing the prompt prefix "The capital of".
inline constexpr const char* kTenExamples =
    R"({"prompt": "The capital of France is", "answer": " Paris"}
{"prompt": "The capital of Peru is", "answer": " Lima"}
{"prompt": "Two plus two is", "answer": " four"}
{"prompt": "Water is", "choices": [" wet", " dry"], "label": 0}
{"prompt": "The sky is", "answer": " blue"}
{"prompt": "Fire is", "choices": [" cold", " hot", " blue"], "label": 1}
{"prompt": "The capital of Italy is", "answer": " Rome"}
{"prompt": "Snow is", "answer": " white"}
{"prompt": "The opposite of up is", "answer": " down"}
{"prompt": "A cat says", "answer": " meow"}
)";

// n JSONL examples: completions "The capital of <country> (i) is" -> " <city>",
// and every fifth a three-way choice.
inline std::string CapitalsDataset(int n) {
  static const char* kCities[] = {"Paris", "Lima", "Rome", "Oslo", "Bern", "Kyiv", "Riga", "Baku"};
  static const char* kCountries[] = {"France",      "Peru",    "Italy",  "Norway",
                                     "Switzerland", "Ukraine", "Latvia", "Azerbaijan"};
  std::string s;
  for (int i = 0; i < n; ++i) {
    if (i % 5 == 3) {
      s += absl::StrCat(R"({"prompt": "Item )", i,
                        R"( is", "choices": [" wet", " dry", " hot"], "label": )", i % 3, "}\n");
    } else {
      s += absl::StrCat(R"({"prompt": "The capital of )", kCountries[i % 8], " (", i,
                        R"() is", "answer": " )", kCities[i % 8], "\"}\n");
    }
  }
  return s;
}

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs a shell command; its exit status (-1 when it did not exit).
inline int Shell(const std::string& cmd) {
  const int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

#ifdef LASERD_BINARY_DIR
inline std::string LaserdBinary() { return std::string(LASERD_BINARY_DIR) + "/server/laserd"; }
#endif

}  // namespace laserd::test_support

#endif  // LASERD_TESTS_SUPPORT_FIXTURES_H_
