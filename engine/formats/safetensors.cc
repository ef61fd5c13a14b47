// safetensors reader: single files and sharded models (model.safetensors.index.json),
// with config.json as metadata.
//
// A safetensors file is a little-endian u64 N, N bytes of JSON header
// ({"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
// "__metadata__": {...}}), then the data section; offsets are relative to it.
#include <algorithm>
#include <filesystem>
#include <limits>
#include <map>
#include <set>
#include <unordered_map>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "engine/formats/internal.h"
#include "engine/formats/weights.h"

namespace laserd::formats::internal {
namespace {

namespace fs = std::filesystem;

constexpr uint64_t kMaxHeaderBytes = 100ull << 20;  // as the reference implementation

struct StTensor {
  TensorInfo info;
  size_t shard = 0;
  uint64_t offset = 0;  // absolute, in the shard's file
  uint64_t nbytes = 0;
};

struct Shard {
  std::string path;
  std::shared_ptr<const Bytes> bytes;
};

bool ParseDType(const std::string& s, DType* out) {
  static const std::map<std::string, DType> kMap = {
      {"F32", DType::kF32}, {"F16", DType::kF16},  {"BF16", DType::kBF16}, {"F64", DType::kF64},
      {"I8", DType::kI8},   {"I16", DType::kI16},  {"I32", DType::kI32},   {"I64", DType::kI64},
      {"U8", DType::kU8},   {"BOOL", DType::kBool}};
  auto it = kMap.find(s);
  if (it == kMap.end()) return false;
  *out = it->second;
  return true;
}

// Parses the header of one safetensors image and appends its tensors to `out`.
absl::Status ParseHeader(const std::string& file, const Bytes& bytes, size_t shard,
                         std::vector<StTensor>* out) {
  const size_t size = bytes.size();
  auto err = [&](const std::string& why) {
    return absl::DataLossError(absl::StrCat(file, ": ", why));
  };
  auto terr = [&](const std::string& tensor, const std::string& why) {
    return absl::DataLossError(absl::StrCat(file, ": tensor '", tensor, "': ", why));
  };
  if (size < 8) {
    return err(absl::StrCat("file of ", size, " bytes is too small for the 8-byte header length"));
  }
  uint64_t n;
  __builtin_memcpy(&n, bytes.data(), 8);
  if (n > size - 8) {
    return err(absl::StrCat("header length ", n, " exceeds the ", size - 8,
                            " bytes after the length field (file truncated?)"));
  }
  if (n > kMaxHeaderBytes) {
    return err(absl::StrCat("header length ", n, " exceeds the limit of ", kMaxHeaderBytes));
  }
  const char* h = reinterpret_cast<const char*>(bytes.data() + 8);
  nlohmann::json header = nlohmann::json::parse(h, h + n, nullptr, /*allow_exceptions=*/false);
  if (header.is_discarded()) return err("header is not valid JSON");
  if (!header.is_object()) return err("header is not a JSON object");
  const uint64_t data_start = 8 + n;
  const uint64_t data_size = size - data_start;

  std::vector<StTensor> mine;
  for (auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) return err("__metadata__ is not a JSON object");
      continue;
    }
    if (!entry.is_object()) return terr(name, "header entry is not a JSON object");
    auto dt = entry.find("dtype");
    if (dt == entry.end() || !dt->is_string()) return terr(name, "missing or non-string dtype");
    StTensor t;
    t.info.name = name;
    t.shard = shard;
    const std::string& dts = dt->get_ref<const std::string&>();
    if (!ParseDType(dts, &t.info.dtype)) {
      return absl::UnimplementedError(
          absl::StrCat(file, ": tensor '", name, "': unsupported dtype ", dts));
    }
    auto sh = entry.find("shape");
    if (sh == entry.end() || !sh->is_array()) return terr(name, "missing or non-array shape");
    unsigned __int128 elems = 1;
    for (const auto& d : *sh) {
      if (!d.is_number_unsigned()) return terr(name, "shape entry is not a non-negative integer");
      const uint64_t v = d.get<uint64_t>();
      if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return terr(name, absl::StrCat("dimension ", v, " is too large"));
      }
      t.info.shape.push_back(static_cast<int64_t>(v));
      elems *= v;
      if (elems > static_cast<unsigned __int128>(std::numeric_limits<int64_t>::max())) {
        return terr(name, "element count overflows 64 bits");
      }
    }
    auto off = entry.find("data_offsets");
    if (off == entry.end() || !off->is_array() || off->size() != 2 ||
        !(*off)[0].is_number_unsigned() || !(*off)[1].is_number_unsigned()) {
      return terr(name, "data_offsets is not a pair of non-negative integers");
    }
    const uint64_t begin = (*off)[0].get<uint64_t>();
    const uint64_t end = (*off)[1].get<uint64_t>();
    if (begin > end)
      return terr(name,
                  absl::StrCat("data_offsets [", begin, ", ", end, "] end before they begin"));
    if (end > data_size) {
      return terr(
          name, absl::StrCat("data_offsets [", begin, ", ", end, "] run past the data section of ",
                             data_size, " bytes (file truncated?)"));
    }
    const unsigned __int128 want =
        elems * static_cast<uint64_t>(Geometry(t.info.dtype).block_bytes);
    if (want != end - begin) {
      return terr(name, absl::StrCat("data_offsets span ", end - begin, " bytes but shape x ", dts,
                                     " needs ", static_cast<uint64_t>(want)));
    }
    t.offset = data_start + begin;
    t.nbytes = end - begin;
    mine.push_back(std::move(t));
  }
  std::vector<const StTensor*> order;
  for (const auto& t : mine) order.push_back(&t);
  std::sort(order.begin(), order.end(),
            [](const StTensor* a, const StTensor* b) { return a->offset < b->offset; });
  for (size_t k = 1; k < order.size(); ++k) {
    if (order[k - 1]->nbytes > 0 && order[k]->nbytes > 0 &&
        order[k - 1]->offset + order[k - 1]->nbytes > order[k]->offset) {
      return terr(order[k]->info.name,
                  absl::StrCat("data overlaps tensor '", order[k - 1]->info.name, "'"));
    }
  }
  for (auto& t : mine) out->push_back(std::move(t));
  return absl::OkStatus();
}

absl::StatusOr<nlohmann::json> ReadJsonFile(const std::string& path) {
  LASERD_ASSIGN_OR_RETURN(auto bytes, MapFile(path));
  const char* p = reinterpret_cast<const char*>(bytes->data());
  nlohmann::json j = nlohmann::json::parse(p, p + bytes->size(), nullptr, false);
  if (j.is_discarded()) return absl::InvalidArgumentError(absl::StrCat(path, ": invalid JSON"));
  if (!j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": top level is not a JSON object"));
  }
  return j;
}

class SafetensorsSource final : public WeightSource {
 public:
  explicit SafetensorsSource(std::string path) : path_(std::move(path)) {}

  FileFormat format() const override { return FileFormat::kSafetensors; }
  const std::string& path() const override { return path_; }
  const nlohmann::json& metadata() const override { return config_; }
  const std::vector<TensorInfo>& tensors() const override { return infos_; }
  bool Has(const std::string& name) const override { return index_.count(name) > 0; }

  absl::StatusOr<TensorF32> LoadF32(const std::string& name) const override {
    auto it = index_.find(name);
    if (it == index_.end()) {
      return absl::NotFoundError(absl::StrCat(path_, ": no tensor named '", name, "'"));
    }
    const StTensor& t = tensors_[it->second];
    const Shard& s = shards_[t.shard];
    if (t.offset > s.bytes->size() || t.nbytes > s.bytes->size() - t.offset) {
      return absl::DataLossError(
          absl::StrCat(s.path, ": tensor '", name, "': data range outside the file"));
    }
    TensorF32 out;
    out.shape = t.info.shape;
    const int64_t n = t.info.NumElements();
    try {
      out.data.resize(static_cast<size_t>(n));
    } catch (const std::bad_alloc&) {
      return absl::ResourceExhaustedError(
          absl::StrCat(s.path, ": tensor '", name, "': cannot allocate ", n, " fp32 values"));
    }
    DequantizeRow(t.info.dtype, s.bytes->data() + t.offset, n, out.data.data());
    return out;
  }

  // Adds one shard image and its tensors. When `wanted` is non-null, only the tensors
  // it maps to this shard's file name are kept.
  absl::Status AddShard(const std::string& file, std::shared_ptr<const Bytes> bytes) {
    std::vector<StTensor> found;
    LASERD_RETURN_IF_ERROR(ParseHeader(file, *bytes, shards_.size(), &found));
    shards_.push_back({file, std::move(bytes)});
    for (auto& t : found) {
      if (index_.count(t.info.name)) {
        return absl::DataLossError(absl::StrCat(file, ": tensor '", t.info.name,
                                                "' also appears in ",
                                                shards_[tensors_[index_[t.info.name]].shard].path));
      }
      index_[t.info.name] = tensors_.size();
      tensors_.push_back(std::move(t));
    }
    return absl::OkStatus();
  }

  void Finish() {
    std::vector<size_t> order(tensors_.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(),
              [&](size_t a, size_t b) { return tensors_[a].info.name < tensors_[b].info.name; });
    std::vector<StTensor> sorted;
    sorted.reserve(order.size());
    for (size_t i : order) sorted.push_back(std::move(tensors_[i]));
    tensors_ = std::move(sorted);
    index_.clear();
    infos_.clear();
    for (size_t i = 0; i < tensors_.size(); ++i) {
      index_[tensors_[i].info.name] = i;
      infos_.push_back(tensors_[i].info);
    }
  }

  absl::Status LoadConfig(const fs::path& dir) {
    const fs::path cfg = dir / "config.json";
    std::error_code ec;
    if (!fs::exists(cfg, ec)) return absl::OkStatus();
    LASERD_ASSIGN_OR_RETURN(auto j, ReadJsonFile(cfg.string()));
    config_ = std::move(j);
    return absl::OkStatus();
  }

  absl::Status OpenIndex(const fs::path& index_path) {
    const std::string ip = index_path.string();
    LASERD_ASSIGN_OR_RETURN(auto j, ReadJsonFile(ip));
    auto wm = j.find("weight_map");
    if (wm == j.end() || !wm->is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(ip, ": missing or non-object weight_map"));
    }
    std::map<std::string, std::vector<std::string>> by_file;
    for (auto& [name, file] : wm->items()) {
      if (!file.is_string()) {
        return absl::InvalidArgumentError(
            absl::StrCat(ip, ": tensor '", name, "': weight_map value is not a file name"));
      }
      const std::string& f = file.get_ref<const std::string&>();
      if (f.empty() || f == "." || f == ".." || f.find('/') != std::string::npos ||
          f.find('\\') != std::string::npos) {
        return absl::InvalidArgumentError(absl::StrCat(
            ip, ": tensor '", name, "': shard file name '", f, "' is not a plain file name"));
      }
      by_file[f].push_back(name);
    }
    const fs::path dir = index_path.parent_path();
    for (const auto& [f, names] : by_file) {
      const std::string sp = (dir / f).string();
      auto bytes = MapFile(sp);
      if (!bytes.ok()) {
        return absl::Status(
            bytes.status().code(),
            absl::StrCat(ip, ": shard listed in weight_map: ", bytes.status().message()));
      }
      LASERD_RETURN_IF_ERROR(AddShard(sp, *std::move(bytes)));
      for (const std::string& name : names) {
        auto it = index_.find(name);
        if (it == index_.end() || shards_[tensors_[it->second].shard].path != sp) {
          return absl::DataLossError(absl::StrCat(
              ip, ": tensor '", name, "': weight_map puts it in ", f, " but that file lacks it"));
        }
      }
    }
    // Keep only tensors the index names (extra ones in a shard are ignored, as in
    // transformers).
    std::vector<StTensor> kept;
    for (auto& t : tensors_) {
      if (wm->contains(t.info.name)) kept.push_back(std::move(t));
    }
    tensors_ = std::move(kept);
    return absl::OkStatus();
  }

 private:
  std::string path_;
  nlohmann::json config_ = nlohmann::json::object();
  std::vector<Shard> shards_;
  std::vector<StTensor> tensors_;
  std::vector<TensorInfo> infos_;
  std::unordered_map<std::string, size_t> index_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<WeightSource>> OpenSafetensorsBytes(
    const std::string& label, std::shared_ptr<const Bytes> bytes) {
  auto src = std::make_unique<SafetensorsSource>(label);
  LASERD_RETURN_IF_ERROR(src->AddShard(label, std::move(bytes)));
  src->Finish();
  return std::unique_ptr<WeightSource>(std::move(src));
}

}  // namespace laserd::formats::internal

namespace laserd::formats {

absl::StatusOr<std::unique_ptr<WeightSource>> OpenSafetensors(const std::string& path) {
  namespace fs = std::filesystem;
  using internal::SafetensorsSource;
  std::error_code ec;
  auto src = std::make_unique<SafetensorsSource>(path);
  fs::path p(path);
  fs::path dir;
  if (fs::is_directory(p, ec)) {
    dir = p;
    if (fs::exists(p / "model.safetensors.index.json", ec)) {
      LASERD_RETURN_IF_ERROR(src->OpenIndex(p / "model.safetensors.index.json"));
    } else {
      fs::path single = p / "model.safetensors";
      if (!fs::exists(single, ec)) {
        // Accept a directory with exactly one *.safetensors file.
        std::vector<fs::path> found;
        for (const auto& e : fs::directory_iterator(p, ec)) {
          if (e.path().extension() == ".safetensors") found.push_back(e.path());
        }
        if (found.size() != 1) {
          return absl::NotFoundError(absl::StrCat(
              path, ": no model.safetensors or model.safetensors.index.json in the directory",
              found.empty() ? "" : " (and several other .safetensors files)"));
        }
        single = found[0];
      }
      LASERD_ASSIGN_OR_RETURN(auto bytes, internal::MapFile(single.string()));
      LASERD_RETURN_IF_ERROR(src->AddShard(single.string(), std::move(bytes)));
    }
  } else {
    dir = p.parent_path();
    if (dir.empty()) dir = ".";
    if (absl::EndsWith(path, ".index.json")) {
      LASERD_RETURN_IF_ERROR(src->OpenIndex(p));
    } else {
      LASERD_ASSIGN_OR_RETURN(auto bytes, internal::MapFile(path));
      LASERD_RETURN_IF_ERROR(src->AddShard(path, std::move(bytes)));
    }
  }
  LASERD_RETURN_IF_ERROR(src->LoadConfig(dir));
  src->Finish();
  return std::unique_ptr<WeightSource>(std::move(src));
}

}  // namespace laserd::formats
