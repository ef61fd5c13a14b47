// GGUF v2/v3 reader: header, metadata key/values (every type, nested arrays
// included) as JSON, tensor infos, alignment, and dequantization to fp32.
//
// Layout (little-endian): "GGUF", u32 version, u64 tensor_count, u64 kv_count,
// kv_count x (string key, u32 type, value), tensor_count x (string name, u32 n_dims,
// u64 ne[n_dims], u32 ggml_type, u64 offset), padding to general.alignment (default
// 32), tensor data. A string is a u64 length and that many bytes.
#include <algorithm>
#include <limits>
#include <unordered_map>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "engine/formats/internal.h"
#include "engine/formats/weights.h"

namespace laserd::formats::internal {
namespace {

constexpr int kMaxArrayDepth = 16;
constexpr uint32_t kMaxDims = 4;  // GGML_MAX_DIMS
constexpr uint64_t kDefaultAlignment = 32;

enum GgufType : uint32_t {
  kU8 = 0,
  kI8 = 1,
  kU16 = 2,
  kI16 = 3,
  kU32 = 4,
  kI32 = 5,
  kF32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kU64 = 10,
  kI64 = 11,
  kF64 = 12,
};

const char* GgufTypeName(uint32_t t) {
  static const char* kNames[] = {"UINT8",  "INT8",    "UINT16", "INT16",  "UINT32",
                                 "INT32",  "FLOAT32", "BOOL",   "STRING", "ARRAY",
                                 "UINT64", "INT64",   "FLOAT64"};
  return t < 13 ? kNames[t] : "unknown";
}

// Maps a ggml_type id to our DType; names the unsupported ones.
bool GgmlTypeToDType(uint32_t id, DType* out, const char** name) {
  static const char* kNames[] = {
      "F32",   "F16",        "Q4_0",       "Q4_1",       "Q4_2",     "Q4_3",     "Q5_0",
      "Q5_1",  "Q8_0",       "Q8_1",       "Q2_K",       "Q3_K",     "Q4_K",     "Q5_K",
      "Q6_K",  "Q8_K",       "IQ2_XXS",    "IQ2_XS",     "IQ3_XXS",  "IQ1_S",    "IQ4_NL",
      "IQ3_S", "IQ2_S",      "IQ4_XS",     "I8",         "I16",      "I32",      "I64",
      "F64",   "IQ1_M",      "BF16",       "Q4_0_4_4",   "Q4_0_4_8", "Q4_0_8_8", "TQ1_0",
      "TQ2_0", "IQ4_NL_4_4", "IQ4_NL_4_8", "IQ4_NL_8_8", "MXFP4"};
  *name = id < sizeof(kNames) / sizeof(kNames[0]) ? kNames[id] : "unknown";
  switch (id) {
    case 0:
      *out = DType::kF32;
      return true;
    case 1:
      *out = DType::kF16;
      return true;
    case 2:
      *out = DType::kQ4_0;
      return true;
    case 3:
      *out = DType::kQ4_1;
      return true;
    case 6:
      *out = DType::kQ5_0;
      return true;
    case 7:
      *out = DType::kQ5_1;
      return true;
    case 8:
      *out = DType::kQ8_0;
      return true;
    case 10:
      *out = DType::kQ2_K;
      return true;
    case 11:
      *out = DType::kQ3_K;
      return true;
    case 12:
      *out = DType::kQ4_K;
      return true;
    case 13:
      *out = DType::kQ5_K;
      return true;
    case 14:
      *out = DType::kQ6_K;
      return true;
    case 15:
      *out = DType::kQ8_K;
      return true;
    case 24:
      *out = DType::kI8;
      return true;
    case 25:
      *out = DType::kI16;
      return true;
    case 26:
      *out = DType::kI32;
      return true;
    case 27:
      *out = DType::kI64;
      return true;
    case 28:
      *out = DType::kF64;
      return true;
    case 30:
      *out = DType::kBF16;
      return true;
    default:
      return false;
  }
}

// Bounds-checked little-endian cursor over the file image.
class Cursor {
 public:
  Cursor(const std::string& file, const uint8_t* data, size_t size)
      : file_(file), data_(data), size_(size) {}
  size_t pos() const { return pos_; }
  size_t remaining() const { return size_ - pos_; }

  absl::Status Error(const std::string& what) const {
    return absl::DataLossError(
        absl::StrCat(file_, ": ", what, " (at byte offset ", pos_, ", file size ", size_, ")"));
  }
  absl::Status Truncated(const std::string& what) const {
    return Error(absl::StrCat("truncated while reading ", what));
  }

  template <typename T>
  absl::Status Read(T* out, const std::string& what) {
    if (remaining() < sizeof(T)) return Truncated(what);
    __builtin_memcpy(out, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return absl::OkStatus();
  }

  absl::Status ReadString(std::string* out, const std::string& what) {
    uint64_t len = 0;
    LASERD_RETURN_IF_ERROR(Read(&len, absl::StrCat(what, " length")));
    if (len > remaining()) {
      return Error(absl::StrCat(what, " has length ", len, " but only ", remaining(),
                                " bytes remain in the file"));
    }
    out->assign(reinterpret_cast<const char*>(data_ + pos_), static_cast<size_t>(len));
    pos_ += static_cast<size_t>(len);
    return absl::OkStatus();
  }

 private:
  const std::string& file_;
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

// Smallest encoded size of one value of a GGUF type (for bounding array counts).
uint64_t MinEncodedSize(uint32_t type) {
  switch (type) {
    case kU8:
    case kI8:
    case kBool:
      return 1;
    case kU16:
    case kI16:
      return 2;
    case kU32:
    case kI32:
    case kF32:
      return 4;
    case kU64:
    case kI64:
    case kF64:
    case kString:
      return 8;
    case kArray:
      return 12;
    default:
      return 1;
  }
}

template <typename T>
absl::Status ReadNum(Cursor& c, const std::string& what, nlohmann::json* out) {
  T v{};
  LASERD_RETURN_IF_ERROR(c.Read(&v, what));
  *out = v;
  return absl::OkStatus();
}

absl::Status ReadValue(Cursor& c, uint32_t type, int depth, const std::string& key,
                       nlohmann::json* out) {
  const std::string what = absl::StrCat("value of metadata key '", key, "'");
  switch (type) {
    case kU8:
      return ReadNum<uint8_t>(c, what, out);
    case kI8:
      return ReadNum<int8_t>(c, what, out);
    case kU16:
      return ReadNum<uint16_t>(c, what, out);
    case kI16:
      return ReadNum<int16_t>(c, what, out);
    case kU32:
      return ReadNum<uint32_t>(c, what, out);
    case kI32:
      return ReadNum<int32_t>(c, what, out);
    case kU64:
      return ReadNum<uint64_t>(c, what, out);
    case kI64:
      return ReadNum<int64_t>(c, what, out);
    case kF32:
      return ReadNum<float>(c, what, out);
    case kF64:
      return ReadNum<double>(c, what, out);
    case kBool: {
      uint8_t v = 0;
      LASERD_RETURN_IF_ERROR(c.Read(&v, what));
      if (v > 1) return c.Error(absl::StrCat(what, ": BOOL byte is ", v, ", not 0 or 1"));
      *out = v != 0;
      return absl::OkStatus();
    }
    case kString: {
      std::string v;
      LASERD_RETURN_IF_ERROR(c.ReadString(&v, what));
      *out = std::move(v);
      return absl::OkStatus();
    }
    case kArray: {
      if (depth >= kMaxArrayDepth) {
        return c.Error(absl::StrCat(what, ": arrays nested deeper than ", kMaxArrayDepth));
      }
      uint32_t elem_type = 0;
      uint64_t count = 0;
      LASERD_RETURN_IF_ERROR(c.Read(&elem_type, absl::StrCat(what, " array type")));
      if (elem_type > kF64) {
        return c.Error(absl::StrCat(what, ": unknown array element type ", elem_type));
      }
      LASERD_RETURN_IF_ERROR(c.Read(&count, absl::StrCat(what, " array length")));
      if (count > c.remaining() / MinEncodedSize(elem_type)) {
        return c.Error(absl::StrCat(what, ": array of ", count, " ", GgufTypeName(elem_type),
                                    " elements cannot fit in the ", c.remaining(),
                                    " remaining bytes"));
      }
      *out = nlohmann::json::array();
      auto& arr = out->get_ref<nlohmann::json::array_t&>();
      arr.reserve(static_cast<size_t>(count));
      for (uint64_t i = 0; i < count; ++i) {
        nlohmann::json v;
        LASERD_RETURN_IF_ERROR(ReadValue(c, elem_type, depth + 1, key, &v));
        arr.push_back(std::move(v));
      }
      return absl::OkStatus();
    }
    default:
      return c.Error(absl::StrCat("metadata key '", key, "' has unknown value type ", type));
  }
}

struct GgufTensor {
  TensorInfo info;
  uint64_t offset = 0;  // absolute, in the file
  uint64_t nbytes = 0;
};

class GgufSource final : public WeightSource {
 public:
  GgufSource(std::string path, std::shared_ptr<const Bytes> bytes)
      : path_(std::move(path)), bytes_(std::move(bytes)) {}

  FileFormat format() const override { return FileFormat::kGguf; }
  const std::string& path() const override { return path_; }
  const nlohmann::json& metadata() const override { return metadata_; }
  const std::vector<TensorInfo>& tensors() const override { return infos_; }
  bool Has(const std::string& name) const override { return index_.count(name) > 0; }

  absl::StatusOr<TensorF32> LoadF32(const std::string& name) const override {
    auto it = index_.find(name);
    if (it == index_.end()) {
      return absl::NotFoundError(absl::StrCat(path_, ": no tensor named '", name, "'"));
    }
    const GgufTensor& t = tensors_[it->second];
    // Bounds were validated at open; check again so a logic slip cannot read past the map.
    if (t.offset > bytes_->size() || t.nbytes > bytes_->size() - t.offset) {
      return absl::DataLossError(
          absl::StrCat(path_, ": tensor '", name, "': data range outside the file"));
    }
    TensorF32 out;
    out.shape = t.info.shape;
    const int64_t n = t.info.NumElements();
    try {
      out.data.resize(static_cast<size_t>(n));
    } catch (const std::bad_alloc&) {
      return absl::ResourceExhaustedError(
          absl::StrCat(path_, ": tensor '", name, "': cannot allocate ", n, " fp32 values"));
    }
    DequantizeRow(t.info.dtype, bytes_->data() + t.offset, n, out.data.data());
    return out;
  }

  absl::Status Parse();

 private:
  absl::Status TensorError(const std::string& tensor, const std::string& why) const {
    return absl::DataLossError(absl::StrCat(path_, ": tensor '", tensor, "': ", why));
  }

  std::string path_;
  std::shared_ptr<const Bytes> bytes_;
  nlohmann::json metadata_ = nlohmann::json::object();
  std::vector<TensorInfo> infos_;
  std::vector<GgufTensor> tensors_;
  std::unordered_map<std::string, size_t> index_;
};

absl::Status GgufSource::Parse() {
  Cursor c(path_, bytes_->data(), bytes_->size());
  char magic[4] = {};
  if (bytes_->size() < 4) return c.Error("file too small to be GGUF (needs the 4-byte magic)");
  LASERD_RETURN_IF_ERROR(c.Read(&magic, "magic"));
  if (__builtin_memcmp(magic, "GGUF", 4) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(path_, ": not a GGUF file (bad magic)"));
  }
  uint32_t version = 0;
  LASERD_RETURN_IF_ERROR(c.Read(&version, "version"));
  if (version != 2 && version != 3) {
    if ((version & 0xffff) == 0 && (version >> 16) != 0) {
      return absl::UnimplementedError(
          absl::StrCat(path_, ": big-endian GGUF (version field reads 0x", absl::Hex(version),
                       " little-endian) is not supported; convert it to little-endian"));
    }
    return absl::UnimplementedError(
        absl::StrCat(path_, ": unsupported GGUF version ", version, " (supported: 2, 3)"));
  }
  uint64_t n_tensors = 0, n_kv = 0;
  LASERD_RETURN_IF_ERROR(c.Read(&n_tensors, "tensor count"));
  LASERD_RETURN_IF_ERROR(c.Read(&n_kv, "metadata key/value count"));
  // Each key/value needs >= 13 bytes, each tensor info >= 24: reject absurd counts
  // before allocating anything for them.
  if (n_kv > c.remaining() / 13) {
    return c.Error(absl::StrCat("metadata count ", n_kv, " cannot fit in the file"));
  }
  if (n_tensors > c.remaining() / 24) {
    return c.Error(absl::StrCat("tensor count ", n_tensors, " cannot fit in the file"));
  }

  uint64_t alignment = kDefaultAlignment;
  for (uint64_t i = 0; i < n_kv; ++i) {
    std::string key;
    LASERD_RETURN_IF_ERROR(c.ReadString(&key, absl::StrCat("metadata key #", i)));
    uint32_t type = 0;
    if (auto s = c.Read(&type, absl::StrCat("type of metadata key '", key, "'")); !s.ok()) {
      return s;
    }
    if (type > kF64) {
      return c.Error(absl::StrCat("metadata key '", key, "' has unknown value type ", type));
    }
    if (metadata_.contains(key)) {
      return c.Error(absl::StrCat("duplicate metadata key '", key, "'"));
    }
    nlohmann::json value;
    LASERD_RETURN_IF_ERROR(ReadValue(c, type, 0, key, &value));
    if (key == "general.alignment") {
      if (type != kU32) {
        return c.Error(
            absl::StrCat("general.alignment has type ", GgufTypeName(type), ", expected UINT32"));
      }
      alignment = value.get<uint32_t>();
      if (alignment == 0 || (alignment & (alignment - 1)) != 0) {
        return c.Error(
            absl::StrCat("general.alignment ", alignment, " is not a non-zero power of two"));
      }
    }
    metadata_[key] = std::move(value);
  }

  tensors_.reserve(static_cast<size_t>(n_tensors));
  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensor t;
    if (auto s = c.ReadString(&t.info.name, absl::StrCat("name of tensor #", i)); !s.ok()) {
      return s;
    }
    const std::string& name = t.info.name;
    const std::string what = absl::StrCat("info of tensor '", name, "'");
    if (index_.count(name)) return c.Error(absl::StrCat("duplicate tensor name '", name, "'"));
    uint32_t n_dims = 0;
    LASERD_RETURN_IF_ERROR(c.Read(&n_dims, what));
    if (n_dims > kMaxDims) {
      return c.Error(
          absl::StrCat("tensor '", name, "' has ", n_dims, " dimensions (max ", kMaxDims, ")"));
    }
    uint64_t ne[kMaxDims] = {1, 1, 1, 1};
    for (uint32_t d = 0; d < n_dims; ++d) {
      LASERD_RETURN_IF_ERROR(c.Read(&ne[d], what));
      if (ne[d] > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return c.Error(
            absl::StrCat("tensor '", name, "' dimension ", d, " is ", ne[d], " (too large)"));
      }
    }
    uint32_t type_id = 0;
    LASERD_RETURN_IF_ERROR(c.Read(&type_id, what));
    const char* type_name;
    if (!GgmlTypeToDType(type_id, &t.info.dtype, &type_name)) {
      return absl::UnimplementedError(absl::StrCat(path_, ": tensor '", name,
                                                   "': unsupported ggml type ", type_name, " (id ",
                                                   type_id, ")"));
    }
    uint64_t rel_offset = 0;
    LASERD_RETURN_IF_ERROR(c.Read(&rel_offset, what));

    // Shape in PyTorch order: reverse of ne[].
    for (uint32_t d = n_dims; d-- > 0;) t.info.shape.push_back(static_cast<int64_t>(ne[d]));
    const BlockGeometry g = Geometry(t.info.dtype);
    if (ne[0] % static_cast<uint64_t>(g.block_elems) != 0) {
      return TensorError(
          name, absl::StrCat("innermost dimension ", ne[0], " is not a multiple of the ", type_name,
                             " block size ", g.block_elems));
    }
    // Element count and byte size, checked for overflow.
    unsigned __int128 elems = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      elems *= ne[d];
      if (elems > static_cast<unsigned __int128>(std::numeric_limits<int64_t>::max())) {
        return TensorError(name, "element count overflows 64 bits");
      }
    }
    const unsigned __int128 bytes =
        elems / static_cast<uint64_t>(g.block_elems) * static_cast<uint64_t>(g.block_bytes);
    if (bytes > static_cast<unsigned __int128>(bytes_->size())) {
      return TensorError(name, absl::StrCat("needs ", static_cast<uint64_t>(elems), " ", type_name,
                                            " elements, more bytes than the file has"));
    }
    t.nbytes = static_cast<uint64_t>(bytes);
    if (rel_offset % alignment != 0) {
      return TensorError(name, absl::StrCat("data offset ", rel_offset,
                                            " is not a multiple of the alignment ", alignment));
    }
    t.offset = rel_offset;  // made absolute below
    index_[name] = tensors_.size();
    tensors_.push_back(std::move(t));
  }

  // Data section starts at the next multiple of the alignment.
  const uint64_t end_of_infos = c.pos();
  uint64_t data_start = (end_of_infos + alignment - 1) / alignment * alignment;
  if (data_start > bytes_->size()) {
    if (n_tensors > 0) {
      return c.Error(
          absl::StrCat("data section would start at ", data_start, ", past the end of the file"));
    }
    data_start = bytes_->size();
  }
  const uint64_t data_size = bytes_->size() - data_start;
  std::vector<std::pair<uint64_t, size_t>> order;
  order.reserve(tensors_.size());
  for (size_t i = 0; i < tensors_.size(); ++i) {
    GgufTensor& t = tensors_[i];
    if (t.offset > data_size || t.nbytes > data_size - t.offset) {
      return TensorError(t.info.name, absl::StrCat("data [", t.offset, ", +", t.nbytes,
                                                   ") lies outside the data section of ", data_size,
                                                   " bytes (file truncated?)"));
    }
    t.offset += data_start;
    order.emplace_back(t.offset, i);
  }
  std::sort(order.begin(), order.end());
  for (size_t k = 1; k < order.size(); ++k) {
    const GgufTensor& prev = tensors_[order[k - 1].second];
    const GgufTensor& cur = tensors_[order[k].second];
    if (prev.nbytes > 0 && cur.nbytes > 0 && prev.offset + prev.nbytes > cur.offset) {
      return TensorError(cur.info.name,
                         absl::StrCat("data overlaps tensor '", prev.info.name, "'"));
    }
  }
  infos_.reserve(tensors_.size());
  for (const GgufTensor& t : tensors_) infos_.push_back(t.info);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<WeightSource>> OpenGgufBytes(const std::string& label,
                                                            std::shared_ptr<const Bytes> bytes) {
  auto src = std::make_unique<GgufSource>(label, std::move(bytes));
  LASERD_RETURN_IF_ERROR(src->Parse());
  return std::unique_ptr<WeightSource>(std::move(src));
}

}  // namespace laserd::formats::internal

namespace laserd::formats {

absl::StatusOr<std::unique_ptr<WeightSource>> OpenGguf(const std::string& path) {
  LASERD_ASSIGN_OR_RETURN(auto bytes, internal::MapFile(path));
  return internal::OpenGgufBytes(path, std::move(bytes));
}

}  // namespace laserd::formats
