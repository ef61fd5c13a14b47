// Tests of engine/formats: GGUF and safetensors readers against references written
// by scripts/fixtures/make_format_fixtures.py (gguf-py's own dequantization), the real
// SmolLM2 GGUF, and corrupt inputs.
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/formats/internal.h"
#include "engine/formats/weights.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/requirements.h"

namespace laserd::formats {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

const std::string kFixtures = std::string(LASERD_SOURCE_DIR) + "/tests/fixtures/formats";

std::vector<uint8_t> ReadAll(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

nlohmann::json ReadJson(const std::string& path) {
  std::ifstream f(path);
  return nlohmann::json::parse(f);
}

uint32_t Bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// Compares bit patterns, reporting the first mismatches.
void ExpectBitEqual(const std::vector<float>& got, const std::vector<float>& want,
                    const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  int bad = 0;
  for (size_t i = 0; i < got.size() && bad < 5; ++i) {
    if (Bits(got[i]) != Bits(want[i])) {
      ADD_FAILURE() << what << "[" << i << "]: got " << got[i] << " want " << want[i];
      ++bad;
    }
  }
}

absl::StatusOr<std::unique_ptr<WeightSource>> OpenGgufMem(const std::vector<uint8_t>& b,
                                                          const std::string& label = "mem.gguf") {
  return internal::OpenGgufBytes(label, internal::CopyBytes(b.data(), b.size()));
}
absl::StatusOr<std::unique_ptr<WeightSource>> OpenStMem(const std::vector<uint8_t>& b,
                                                        const std::string& label = "mem.st") {
  return internal::OpenSafetensorsBytes(label, internal::CopyBytes(b.data(), b.size()));
}

// Opens, then loads every tensor; returns the first error.
absl::Status OpenAndLoadAll(absl::StatusOr<std::unique_ptr<WeightSource>> src) {
  if (!src.ok()) return src.status();
  for (const TensorInfo& t : (*src)->tensors()) {
    auto r = (*src)->LoadF32(t.name);
    if (!r.ok()) return r.status();
    if (static_cast<int64_t>(r->data.size()) != t.NumElements()) {
      return absl::InternalError("size mismatch");
    }
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------
// A tiny GGUF writer for hand-made (often broken) files.
class GgufBuilder {
 public:
  explicit GgufBuilder(uint32_t version = 3) { Put(version); }
  template <typename T>
  void Put(T v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    body_.insert(body_.end(), p, p + sizeof(T));
  }
  void PutStr(const std::string& s) {
    Put<uint64_t>(s.size());
    body_.insert(body_.end(), s.begin(), s.end());
  }
  std::vector<uint8_t>& body() { return body_; }
  // magic + body; pads to `align` and appends `data`.
  std::vector<uint8_t> Finish(const std::vector<uint8_t>& data, size_t align = 32) const {
    std::vector<uint8_t> out = {'G', 'G', 'U', 'F'};
    out.insert(out.end(), body_.begin(), body_.end());
    while (out.size() % align) out.push_back(0);
    out.insert(out.end(), data.begin(), data.end());
    return out;
  }

 private:
  std::vector<uint8_t> body_;
};

// One F32 tensor info: name, dims (ggml order), type, offset.
void PutTensor(GgufBuilder& b, const std::string& name, std::vector<uint64_t> ne, uint32_t type,
               uint64_t offset) {
  b.PutStr(name);
  b.Put<uint32_t>(ne.size());
  for (uint64_t d : ne) b.Put<uint64_t>(d);
  b.Put<uint32_t>(type);
  b.Put<uint64_t>(offset);
}

std::vector<uint8_t> FloatBytes(std::vector<float> v) {
  std::vector<uint8_t> out(v.size() * 4);
  std::memcpy(out.data(), v.data(), out.size());
  return out;
}

// ---------------------------------------------------------------------------------
// GGUF: dequantization and metadata.

TEST(GgufTest, EveryTypeMatchesGgufPyBitExactly) {
  auto src = OpenGguf(kFixtures + "/quants.gguf");
  ASSERT_TRUE(src.ok()) << src.status();
  auto ref = OpenSafetensors(kFixtures + "/quants_ref.safetensors");
  ASSERT_TRUE(ref.ok()) << ref.status();
  const std::map<std::string, DType> want_types = {
      {"t.f32", DType::kF32},   {"t.f16", DType::kF16},   {"t.bf16", DType::kBF16},
      {"t.q8_0", DType::kQ8_0}, {"t.q4_0", DType::kQ4_0}, {"t.q4_1", DType::kQ4_1},
      {"t.q5_0", DType::kQ5_0}, {"t.q5_1", DType::kQ5_1}, {"t.q2_k", DType::kQ2_K},
      {"t.q3_k", DType::kQ3_K}, {"t.q4_k", DType::kQ4_K}, {"t.q5_k", DType::kQ5_K},
      {"t.q6_k", DType::kQ6_K}, {"t.q8_k", DType::kQ8_K}, {"t.zz_last", DType::kF32}};
  ASSERT_EQ((*src)->tensors().size(), want_types.size());
  ASSERT_EQ((*ref)->tensors().size(), want_types.size());
  for (const TensorInfo& info : (*src)->tensors()) {
    SCOPED_TRACE(info.name);
    ASSERT_TRUE(want_types.count(info.name));
    EXPECT_EQ(info.dtype, want_types.at(info.name)) << DTypeName(info.dtype);
    auto got = (*src)->LoadF32(info.name);
    ASSERT_TRUE(got.ok()) << got.status();
    auto want = (*ref)->LoadF32(info.name);
    ASSERT_TRUE(want.ok()) << want.status();
    EXPECT_EQ(got->shape, want->shape);
    EXPECT_EQ(got->shape, info.shape);
    ExpectBitEqual(got->data, want->data, info.name);
  }
}

TEST(GgufTest, ShapesAreInPytorchOrder) {
  auto src = OpenGguf(kFixtures + "/quants.gguf");
  ASSERT_TRUE(src.ok()) << src.status();
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const auto& t : (*src)->tensors()) shapes[t.name] = t.shape;
  EXPECT_EQ(shapes["t.f32"], (std::vector<int64_t>{2, 3, 64}));
  EXPECT_EQ(shapes["t.q4_0"], (std::vector<int64_t>{4, 128}));
  EXPECT_EQ(shapes["t.q6_k"], (std::vector<int64_t>{3, 512}));
  EXPECT_EQ(shapes["t.zz_last"], (std::vector<int64_t>{8}));
  EXPECT_EQ((*src)->format(), FileFormat::kGguf);
  EXPECT_TRUE((*src)->Has("t.q5_k"));
  EXPECT_FALSE((*src)->Has("nope"));
  auto missing = (*src)->LoadF32("nope");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("quants.gguf"));
  EXPECT_THAT(missing.status().message(), HasSubstr("'nope'"));
}

TEST(GgufTest, MetadataOfEveryValueType) {
  auto src = OpenGguf(kFixtures + "/quants.gguf");
  ASSERT_TRUE(src.ok()) << src.status();
  const nlohmann::json want = ReadJson(kFixtures + "/quants_meta.json");
  const nlohmann::json& got = (*src)->metadata();
  std::set<std::string> got_keys, want_keys;
  for (auto& [k, v] : got.items()) got_keys.insert(k);
  for (auto& [k, v] : want.items()) want_keys.insert(k);
  EXPECT_EQ(got_keys, want_keys);
  for (auto& [k, v] : want.items()) {
    EXPECT_EQ(got.value(k, nlohmann::json()), v) << k;
  }
  // Exact types and extremes.
  EXPECT_EQ(got["test.u64"].get<uint64_t>(), 18000000000000000000ull);
  EXPECT_EQ(got["test.i64"].get<int64_t>(), -9000000000000000000ll);
  EXPECT_EQ(got["test.u32"].get<uint64_t>(), 4000000000ull);
  EXPECT_TRUE(got["test.bool"].is_boolean());
  EXPECT_EQ(got["test.string"].get<std::string>(), "h\xc3\xa9llo w\xc3\xb6rld \xe2\x9c\x93");
  EXPECT_EQ(got["test.arr_nested"], nlohmann::json::parse("[[1,2],[3],[4,5,6]]"));
  EXPECT_EQ(got["test.arr_nested_str"], nlohmann::json::parse(R"([["x","y"],["z"]])"));
}

TEST(GgufTest, Version2ReadsLikeVersion3) {
  std::vector<uint8_t> b = ReadAll(kFixtures + "/small.gguf");
  ASSERT_GT(b.size(), 8u);
  auto v3 = OpenGgufMem(b);
  ASSERT_TRUE(v3.ok()) << v3.status();
  b[4] = 2;
  auto v2 = OpenGgufMem(b);
  ASSERT_TRUE(v2.ok()) << v2.status();
  ASSERT_EQ((*v2)->tensors().size(), 3u);
  for (const auto& t : (*v3)->tensors()) {
    auto a = (*v3)->LoadF32(t.name);
    auto c = (*v2)->LoadF32(t.name);
    ASSERT_TRUE(a.ok() && c.ok());
    ExpectBitEqual(c->data, a->data, t.name);
  }
  EXPECT_EQ((*v2)->metadata()["tokenizer.ggml.tokens"], nlohmann::json::parse(R"(["a","b","c"])"));
}

TEST(GgufTest, UnsupportedVersionsAndBigEndian) {
  std::vector<uint8_t> b = ReadAll(kFixtures + "/small.gguf");
  std::vector<uint8_t> v1 = b;
  v1[4] = 1;
  auto r1 = OpenGgufMem(v1, "old.gguf");
  EXPECT_EQ(r1.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(r1.status().message(), HasSubstr("old.gguf: unsupported GGUF version 1"));
  std::vector<uint8_t> be = b;
  be[4] = 0, be[5] = 0, be[6] = 0, be[7] = 3;
  auto r2 = OpenGgufMem(be, "be.gguf");
  EXPECT_EQ(r2.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(r2.status().message(), HasSubstr("big-endian"));
  std::vector<uint8_t> bad = b;
  bad[0] = 'X';
  EXPECT_THAT(OpenGgufMem(bad).status().message(), HasSubstr("not a GGUF file"));
}

TEST(GgufTest, HandMadeFilesAndTheirErrors) {
  // A valid file with general.alignment 64 and two F32 tensors.
  {
    GgufBuilder g;
    g.Put<uint64_t>(2);  // tensors
    g.Put<uint64_t>(1);  // kv
    g.PutStr("general.alignment");
    g.Put<uint32_t>(4);  // UINT32
    g.Put<uint32_t>(64);
    PutTensor(g, "a", {2}, 0, 0);
    PutTensor(g, "b", {3, 1}, 0, 64);
    std::vector<uint8_t> data = FloatBytes({1, 2});
    data.resize(64);
    auto more = FloatBytes({3, 4, 5});
    data.insert(data.end(), more.begin(), more.end());
    auto src = OpenGgufMem(g.Finish(data, 64));
    ASSERT_TRUE(src.ok()) << src.status();
    auto b = (*src)->LoadF32("b");
    ASSERT_TRUE(b.ok());
    EXPECT_EQ(b->shape, (std::vector<int64_t>{1, 3}));
    EXPECT_EQ(b->data, (std::vector<float>{3, 4, 5}));
    EXPECT_EQ((*src)->metadata()["general.alignment"], 64);
  }
  struct Case {
    std::string name;
    std::vector<uint8_t> bytes;
    absl::StatusCode code;
    std::string msg;
  };
  std::vector<Case> cases;
  {
    GgufBuilder g;
    g.Put<uint64_t>(1), g.Put<uint64_t>(0);
    PutTensor(g, "w.iq2", {256}, 16, 0);
    cases.push_back({"iq2", g.Finish(std::vector<uint8_t>(66)), absl::StatusCode::kUnimplemented,
                     "tensor 'w.iq2': unsupported ggml type IQ2_XXS (id 16)"});
  }
  {
    GgufBuilder g;
    g.Put<uint64_t>(1), g.Put<uint64_t>(0);
    PutTensor(g, "w.q40", {30}, 2, 0);
    cases.push_back({"block", g.Finish(std::vector<uint8_t>(18)), absl::StatusCode::kDataLoss,
                     "tensor 'w.q40': innermost dimension 30 is not a multiple of the Q4_0 "
                     "block size 32"});
  }
  {
    GgufBuilder g;
    g.Put<uint64_t>(1), g.Put<uint64_t>(0);
    PutTensor(g, "w.big", {4, 4}, 0, 0);
    cases.push_back({"short", g.Finish(FloatBytes({1, 2, 3})), absl::StatusCode::kDataLoss,
                     "tensor 'w.big': data [0, +64) lies outside the data section of 12 bytes"});
  }
  {
    GgufBuilder g;
    g.Put<uint64_t>(1), g.Put<uint64_t>(0);
    PutTensor(g, "w.mis", {1}, 0, 4);
    cases.push_back({"misaligned", g.Finish(FloatBytes({1, 2})), absl::StatusCode::kDataLoss,
                     "tensor 'w.mis': data offset 4 is not a multiple of the alignment 32"});
  }
  {
    GgufBuilder g;
    g.Put<uint64_t>(2), g.Put<uint64_t>(0);
    PutTensor(g, "x", {16}, 0, 0);
    PutTensor(g, "y", {8}, 0, 32);
    cases.push_back({"overlap", g.Finish(std::vector<uint8_t>(64)), absl::StatusCode::kDataLoss,
                     "tensor 'y': data overlaps tensor 'x'"});
  }
  {
    GgufBuilder g;
    g.Put<uint64_t>(1), g.Put<uint64_t>(0);
    PutTensor(g, "huge", {1ull << 40, 1ull << 40}, 0, 0);
    cases.push_back({"overflow", g.Finish({}), absl::StatusCode::kDataLoss,
                     "tensor 'huge': element count overflows 64 bits"});
  }
  {
    GgufBuilder g;
    g.Put<uint64_t>(1), g.Put<uint64_t>(0);
    PutTensor(g, "five", {1, 1, 1, 1, 1}, 0, 0);
    cases.push_back({"dims", g.Finish({}), absl::StatusCode::kDataLoss,
                     "tensor 'five' has 5 dimensions (max 4)"});
  }
  {
    GgufBuilder g;
    g.Put<uint64_t>(0), g.Put<uint64_t>(1);
    g.PutStr("general.alignment");
    g.Put<uint32_t>(4);
    g.Put<uint32_t>(48);
    cases.push_back({"align", g.Finish({}), absl::StatusCode::kDataLoss,
                     "general.alignment 48 is not a non-zero power of two"});
  }
  {
    GgufBuilder g;
    g.Put<uint64_t>(0), g.Put<uint64_t>(2);
    for (int i = 0; i < 2; ++i) {
      g.PutStr("k");
      g.Put<uint32_t>(0);
      g.Put<uint8_t>(1);
    }
    cases.push_back(
        {"dupkey", g.Finish({}), absl::StatusCode::kDataLoss, "duplicate metadata key 'k'"});
  }
  {
    GgufBuilder g;
    g.Put<uint64_t>(0), g.Put<uint64_t>(1);
    g.PutStr("deep");
    g.Put<uint32_t>(9);
    for (int i = 0; i < 40; ++i) g.Put<uint32_t>(9), g.Put<uint64_t>(1);
    cases.push_back(
        {"deep", g.Finish({}), absl::StatusCode::kDataLoss, "arrays nested deeper than 16"});
  }
  {
    GgufBuilder g;
    g.Put<uint64_t>(0), g.Put<uint64_t>(1);
    g.PutStr("arr");
    g.Put<uint32_t>(9);
    g.Put<uint32_t>(8);           // of strings
    g.Put<uint64_t>(1ull << 60);  // absurd count
    cases.push_back({"count", g.Finish({}), absl::StatusCode::kDataLoss,
                     "value of metadata key 'arr': array of 1152921504606846976 STRING elements "
                     "cannot fit"});
  }
  {
    GgufBuilder g;
    g.Put<uint64_t>(0), g.Put<uint64_t>(1);
    g.PutStr("t");
    g.Put<uint32_t>(13);
    cases.push_back({"vtype", g.Finish({}), absl::StatusCode::kDataLoss,
                     "metadata key 't' has unknown value type 13"});
  }
  {
    GgufBuilder g;
    g.Put<uint64_t>(2), g.Put<uint64_t>(0);
    PutTensor(g, "d", {1}, 0, 0);
    PutTensor(g, "d", {1}, 0, 32);
    cases.push_back({"duptensor", g.Finish(std::vector<uint8_t>(64)), absl::StatusCode::kDataLoss,
                     "duplicate tensor name 'd'"});
  }
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    auto r = OpenGgufMem(c.bytes, c.name + ".gguf");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), c.code) << r.status();
    EXPECT_THAT(r.status().message(), HasSubstr(c.name + ".gguf: ")) << r.status();
    EXPECT_THAT(r.status().message(), HasSubstr(c.msg)) << r.status();
  }
}

TEST(GgufTest, EveryTruncationFails) {
  for (const char* name : {"small.gguf", "quants.gguf"}) {
    std::vector<uint8_t> b = ReadAll(kFixtures + "/" + name);
    ASSERT_TRUE(OpenAndLoadAll(OpenGgufMem(b)).ok());
    for (size_t n = 0; n < b.size(); ++n) {
      std::vector<uint8_t> t(b.begin(), b.begin() + n);
      absl::Status s = OpenAndLoadAll(OpenGgufMem(t));
      ASSERT_FALSE(s.ok()) << name << " truncated to " << n << " bytes was accepted";
    }
  }
  // Through a real file: the message names the file and the tensor.
  std::vector<uint8_t> b = ReadAll(kFixtures + "/small.gguf");
  const std::string path = (fs::temp_directory_path() / "laserd_trunc_test.gguf").string();
  {
    std::ofstream f(path, std::ios::binary);
    f.write(reinterpret_cast<const char*>(b.data()), b.size() - 5);
  }
  auto r = OpenGguf(path);
  fs::remove(path);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(r.status().message(), HasSubstr(path + ": tensor 'w.f32': data [288, +32) lies "
                                                     "outside the data section of 315 bytes"));
}

TEST(GgufTest, ByteFlipsNeverCrashAndStructuralFlipsFail) {
  std::vector<uint8_t> b = ReadAll(kFixtures + "/small.gguf");
  std::mt19937 rng(7);
  int accepted = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    for (uint8_t v : {uint8_t(b[i] ^ 0xff), uint8_t(rng()), uint8_t(b[i] ^ 0x01)}) {
      std::vector<uint8_t> c = b;
      c[i] = v;
      if (OpenAndLoadAll(OpenGgufMem(c)).ok()) ++accepted;
    }
  }
  // Structural fields: magic, version, tensor count, kv count, first key length.
  for (size_t i : {0, 1, 2, 3, 4, 5, 6, 7, 15, 23, 31}) {
    std::vector<uint8_t> c = b;
    c[i] ^= 0xff;
    EXPECT_FALSE(OpenGgufMem(c).ok()) << "flip at " << i;
  }
  // Tensor data bytes are not checked (any bit pattern is a value), so some flips load.
  EXPECT_GT(accepted, 0);
}

// ---------------------------------------------------------------------------------
// safetensors.

void ExpectMatchesExpected(const WeightSource& src, const nlohmann::json& expected) {
  ASSERT_EQ(src.tensors().size(), expected.size());
  for (auto& [name, e] : expected.items()) {
    SCOPED_TRACE(name);
    auto t = src.LoadF32(name);
    ASSERT_TRUE(t.ok()) << t.status();
    EXPECT_EQ(t->shape, e["shape"].get<std::vector<int64_t>>());
    std::vector<float> want;
    for (double v : e["values"]) want.push_back(static_cast<float>(v));
    ExpectBitEqual(t->data, want, name);
  }
}

TEST(SafetensorsTest, EveryDType) {
  auto src = OpenSafetensors(kFixtures + "/dtypes.safetensors");
  ASSERT_TRUE(src.ok()) << src.status();
  EXPECT_EQ((*src)->format(), FileFormat::kSafetensors);
  EXPECT_EQ((*src)->metadata(), nlohmann::json::object());  // no config.json beside it
  ExpectMatchesExpected(**src, ReadJson(kFixtures + "/dtypes_expected.json"));
  std::map<std::string, DType> types;
  for (const auto& t : (*src)->tensors()) types[t.name] = t.dtype;
  EXPECT_EQ(types["c.bf16"], DType::kBF16);
  EXPECT_EQ(types["b.f16"], DType::kF16);
  EXPECT_EQ(types["j.bool"], DType::kBool);
  EXPECT_EQ(types["d.f64"], DType::kF64);
}

TEST(SafetensorsTest, ShardedModelWithConfig) {
  const std::string dir = kFixtures + "/sharded";
  const nlohmann::json expected = ReadJson(dir + "/expected.json");
  for (const std::string& p : {dir, dir + "/model.safetensors.index.json"}) {
    SCOPED_TRACE(p);
    auto src = OpenSafetensors(p);
    ASSERT_TRUE(src.ok()) << src.status();
    EXPECT_EQ((*src)->path(), p);
    EXPECT_EQ((*src)->metadata()["num_hidden_layers"], 2);
    EXPECT_EQ((*src)->metadata()["rope_theta"], 10000.0);
    ExpectMatchesExpected(**src, expected);
  }
  auto w = OpenWeights(dir);
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ((*w)->format(), FileFormat::kSafetensors);
  EXPECT_EQ((*w)->tensors().size(), 4u);
}

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() / absl::StrCat("laserd_formats_", getpid(), "_", counter_++);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string Write(const std::string& name, const std::string& content) const {
    std::ofstream f(path_ / name, std::ios::binary);
    f << content;
    return (path_ / name).string();
  }
  std::string path() const { return path_.string(); }

 private:
  static inline int counter_ = 0;
  fs::path path_;
};

std::string StFile(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  uint64_t n = header.size();
  std::memcpy(out.data(), &n, 8);
  return out + header + data;
}

TEST(SafetensorsTest, ShardErrors) {
  const std::string shard =
      StFile(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", std::string(4, '\0'));
  {
    TempDir d;
    d.Write("s1.safetensors", shard);
    d.Write("model.safetensors.index.json",
            R"({"weight_map":{"a":"s1.safetensors","b":"s2.safetensors"}})");
    auto r = OpenSafetensors(d.path());
    EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound) << r.status();
    EXPECT_THAT(r.status().message(), HasSubstr("s2.safetensors"));
  }
  {
    TempDir d;
    d.Write("s1.safetensors", shard);
    d.Write("model.safetensors.index.json",
            R"({"weight_map":{"a":"s1.safetensors","b":"s1.safetensors"}})");
    auto r = OpenSafetensors(d.path());
    EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << r.status();
    EXPECT_THAT(
        r.status().message(),
        HasSubstr("tensor 'b': weight_map puts it in s1.safetensors but that file lacks it"));
  }
  {
    TempDir d;
    d.Write("model.safetensors.index.json", R"({"weight_map":{"a":"../etc/passwd"}})");
    auto r = OpenSafetensors(d.path());
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
    EXPECT_THAT(r.status().message(), HasSubstr("is not a plain file name"));
  }
  {
    TempDir d;
    d.Write("model.safetensors", shard);
    d.Write("config.json", "{not json");
    auto r = OpenSafetensors(d.path());
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
    EXPECT_THAT(r.status().message(), HasSubstr("config.json: invalid JSON"));
  }
  {
    TempDir d;
    auto r = OpenSafetensors(d.path());
    EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound) << r.status();
  }
}

TEST(SafetensorsTest, HeaderErrors) {
  struct Case {
    std::string file;
    std::string msg;
    absl::StatusCode code = absl::StatusCode::kDataLoss;
  };
  const std::string z16(16, '\0');
  std::vector<Case> cases = {
      {"abc", "file of 3 bytes is too small"},
      {std::string("\xff\xff\xff\xff\xff\xff\xff\x7f{}", 10),
       "header length 9223372036854775807 "
       "exceeds the 2 bytes"},
      {StFile("{nope", ""), "header is not valid JSON"},
      {StFile("[]", ""), "header is not a JSON object"},
      {StFile(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", "1234"),
       "tensor 'a': data_offsets [0, 8] run past the data section of 4 bytes"},
      {StFile(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", z16),
       "tensor 'a': data_offsets span 8 bytes but shape x F32 needs 12"},
      {StFile(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
              R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
              z16),
       "tensor 'b': data overlaps tensor 'a'"},
      {StFile(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}})", ""),
       "tensor 'a': shape entry is not a non-negative integer"},
      {StFile(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}})", ""),
       "tensor 'a': element count overflows 64 bits"},
      {StFile(R"({"a":{"dtype":"F64","shape":[1152921504606846976],"data_offsets":[0,0]}})", ""),
       "tensor 'a': data_offsets span 0 bytes but shape x F64 needs 9223372036854775808"},
      {StFile(R"({"a":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[0,1]}})", "x"),
       "tensor 'a': unsupported dtype F8_E4M3", absl::StatusCode::kUnimplemented},
      {StFile(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})", "1234"),
       "tensor 'a': data_offsets [4, 0] end before they begin"},
      {StFile(R"({"a":{"shape":[1],"data_offsets":[0,4]}})", "1234"),
       "tensor 'a': missing or non-string dtype"},
      {StFile(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", "1234"),
       "tensor 'a': data_offsets is not a pair of non-negative integers"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.msg);
    std::vector<uint8_t> b(c.file.begin(), c.file.end());
    auto r = OpenStMem(b, "bad.safetensors");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), c.code) << r.status();
    EXPECT_THAT(r.status().message(), HasSubstr("bad.safetensors: " + c.msg)) << r.status();
  }
}

TEST(SafetensorsTest, EveryTruncationFailsAndFlipsNeverCrash) {
  std::vector<uint8_t> b = ReadAll(kFixtures + "/dtypes.safetensors");
  ASSERT_TRUE(OpenAndLoadAll(OpenStMem(b)).ok());
  for (size_t n = 0; n < b.size(); ++n) {
    std::vector<uint8_t> t(b.begin(), b.begin() + n);
    ASSERT_FALSE(OpenAndLoadAll(OpenStMem(t)).ok()) << "truncated to " << n << " accepted";
  }
  std::mt19937 rng(11);
  for (size_t i = 0; i < b.size(); ++i) {
    for (uint8_t v : {uint8_t(b[i] ^ 0xff), uint8_t(rng())}) {
      std::vector<uint8_t> c = b;
      c[i] = v;
      (void)OpenAndLoadAll(OpenStMem(c));
    }
  }
  // Header-length bytes: any flip breaks the file.
  for (size_t i = 0; i < 8; ++i) {
    std::vector<uint8_t> c = b;
    c[i] ^= 0xff;
    EXPECT_FALSE(OpenStMem(c).ok()) << "flip at " << i;
  }
}

TEST(OpenWeightsTest, DispatchAndErrors) {
  auto g = OpenWeights(kFixtures + "/small.gguf");
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ((*g)->format(), FileFormat::kGguf);
  auto s = OpenWeights(kFixtures + "/dtypes.safetensors");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ((*s)->format(), FileFormat::kSafetensors);
  auto missing = OpenWeights(kFixtures + "/does_not_exist.gguf");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("does_not_exist.gguf: cannot open"));
  auto other = OpenWeights(kFixtures + "/quants_meta.json");
  EXPECT_EQ(other.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(other.status().message(), HasSubstr("unrecognized weight file format"));
}

TEST(HalfTest, ConversionsAreExact) {
  EXPECT_EQ(internal::HalfToFloat(0x3c00), 1.0f);
  EXPECT_EQ(internal::HalfToFloat(0xc000), -2.0f);
  EXPECT_EQ(internal::HalfToFloat(0x7bff), 65504.0f);
  EXPECT_EQ(internal::HalfToFloat(0x0001), 5.9604644775390625e-08f);  // smallest subnormal
  EXPECT_EQ(internal::HalfToFloat(0x03ff), 6.097555160522461e-05f);   // largest subnormal
  EXPECT_EQ(Bits(internal::HalfToFloat(0x8000)), 0x80000000u);
  EXPECT_EQ(Bits(internal::HalfToFloat(0x7c00)), 0x7f800000u);
  EXPECT_EQ(Bits(internal::HalfToFloat(0x7e01)), 0x7fc02000u);  // NaN payload kept
  EXPECT_EQ(internal::BF16ToFloat(0x3f80), 1.0f);
}

// ---------------------------------------------------------------------------------
// The real SmolLM2-135M-Instruct Q4_1 GGUF (fetched into .data by the setup script).

TEST(SmolLM2GgufTest, MetadataTensorsAndValues) {
  const std::string path = std::string(LASERD_DATA_DIR) + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
  if (!fs::exists(path)) {
    LASERD_SKIP_OR_FAIL_IN_CI(
        "real model not fetched: " << path << " is absent (scripts/fetch_model.sh fetches it)");
  }
  const auto t0 = std::chrono::steady_clock::now();
  auto src = OpenGguf(path);
  ASSERT_TRUE(src.ok()) << src.status();
  const auto t1 = std::chrono::steady_clock::now();
  const nlohmann::json& m = (*src)->metadata();
  EXPECT_EQ(m.size(), 33u);
  EXPECT_EQ(m["general.architecture"], "llama");
  EXPECT_EQ(m["llama.block_count"], 30);
  EXPECT_EQ(m["llama.embedding_length"], 576);
  EXPECT_EQ(m["llama.attention.head_count_kv"], 3);
  EXPECT_EQ(m["llama.rope.freq_base"], 100000.0);
  EXPECT_EQ(m["llama.attention.layer_norm_rms_epsilon"].get<float>(), 1e-5f);
  EXPECT_EQ(m["tokenizer.ggml.model"], "gpt2");
  EXPECT_EQ(m["tokenizer.ggml.pre"], "smollm");
  EXPECT_EQ(m["tokenizer.ggml.add_bos_token"], false);
  EXPECT_EQ(m["tokenizer.ggml.tokens"].size(), 49152u);
  EXPECT_EQ(m["general.languages"], nlohmann::json::parse(R"(["en"])"));
  ASSERT_EQ((*src)->tensors().size(), 272u);

  const nlohmann::json ref = ReadJson(kFixtures + "/smollm2_ref.json");
  EXPECT_EQ(ref["n_tensors"], 272);
  for (auto& [name, r] : ref["tensors"].items()) {
    SCOPED_TRACE(name);
    auto t = (*src)->LoadF32(name);
    ASSERT_TRUE(t.ok()) << t.status();
    EXPECT_EQ(t->shape, r["shape"].get<std::vector<int64_t>>());
    for (auto& [idx, v] : r["values"].items()) {
      EXPECT_EQ(Bits(t->data.at(std::stoull(idx))), Bits(static_cast<float>(v.get<double>())))
          << "index " << idx;
    }
    double sum = 0;
    for (float x : t->data) sum += x;
    EXPECT_NEAR(sum, r["sum"].get<double>(), 1e-9 * t->data.size() + 1e-6);
  }

  // Load everything, and report how long it takes.
  const auto t2 = std::chrono::steady_clock::now();
  int64_t elems = 0;
  std::map<DType, int> by_type;
  for (const TensorInfo& info : (*src)->tensors()) {
    auto t = (*src)->LoadF32(info.name);
    ASSERT_TRUE(t.ok()) << t.status();
    elems += static_cast<int64_t>(t->data.size());
    ++by_type[info.dtype];
  }
  const auto t3 = std::chrono::steady_clock::now();
  EXPECT_EQ(elems, 134515008);
  EXPECT_EQ(by_type[DType::kQ8_0], 1);
  EXPECT_EQ(by_type[DType::kF32], 61);
  EXPECT_EQ(by_type[DType::kQ4_1], 210);
  using ms = std::chrono::duration<double, std::milli>;
  std::cout << "[ timing ] SmolLM2 GGUF open+parse " << ms(t1 - t0).count()
            << " ms; dequantize all 272 tensors (" << elems << " values) " << ms(t3 - t2).count()
            << " ms\n";
}

}  // namespace
}  // namespace laserd::formats
