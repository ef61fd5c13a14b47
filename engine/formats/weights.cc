// Shared pieces of the weight readers: dtype names, memory mapping, fp16
// conversion and format detection.
#include "engine/formats/weights.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "engine/formats/internal.h"

namespace laserd::formats {

const char* DTypeName(DType t) {
  switch (t) {
    case DType::kF32:
      return "F32";
    case DType::kF16:
      return "F16";
    case DType::kBF16:
      return "BF16";
    case DType::kF64:
      return "F64";
    case DType::kI8:
      return "I8";
    case DType::kI16:
      return "I16";
    case DType::kI32:
      return "I32";
    case DType::kI64:
      return "I64";
    case DType::kU8:
      return "U8";
    case DType::kBool:
      return "BOOL";
    case DType::kQ8_0:
      return "Q8_0";
    case DType::kQ4_0:
      return "Q4_0";
    case DType::kQ4_1:
      return "Q4_1";
    case DType::kQ5_0:
      return "Q5_0";
    case DType::kQ5_1:
      return "Q5_1";
    case DType::kQ2_K:
      return "Q2_K";
    case DType::kQ3_K:
      return "Q3_K";
    case DType::kQ4_K:
      return "Q4_K";
    case DType::kQ5_K:
      return "Q5_K";
    case DType::kQ6_K:
      return "Q6_K";
    case DType::kQ8_K:
      return "Q8_K";
  }
  return "?";
}

namespace {
int64_t Product(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}
}  // namespace

int64_t TensorInfo::NumElements() const { return Product(shape); }
int64_t TensorF32::NumElements() const { return Product(shape); }

namespace internal {
namespace {

class MappedFile final : public Bytes {
 public:
  MappedFile(void* addr, size_t size) : addr_(addr), size_(size) {}
  ~MappedFile() override {
    if (addr_ != nullptr) munmap(addr_, size_);
  }
  const uint8_t* data() const override {
    return addr_ ? static_cast<const uint8_t*>(addr_) : reinterpret_cast<const uint8_t*>("");
  }
  size_t size() const override { return size_; }

 private:
  void* addr_;
  size_t size_;
};

class OwnedBytes final : public Bytes {
 public:
  OwnedBytes(const uint8_t* data, size_t size) : buf_(data, data + size) {}
  const uint8_t* data() const override {
    return buf_.empty() ? reinterpret_cast<const uint8_t*>("") : buf_.data();
  }
  size_t size() const override { return buf_.size(); }

 private:
  std::vector<uint8_t> buf_;
};

std::array<float, 65536> MakeHalfTable() {
  std::array<float, 65536> t{};
  for (uint32_t h = 0; h < 65536; ++h) {
    const uint32_t sign = (h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    uint32_t bits;
    if (exp == 0x1f) {  // inf / NaN, payload kept
      bits = sign | 0x7f800000u | (man << 13);
    } else if (exp != 0) {  // normal
      bits = sign | ((exp + 112) << 23) | (man << 13);
    } else if (man == 0) {  // signed zero
      bits = sign;
    } else {  // subnormal: normalize
      int e = 113;
      while ((man & 0x400) == 0) {
        man <<= 1;
        --e;
      }
      bits = sign | (static_cast<uint32_t>(e) << 23) | ((man & 0x3ff) << 13);
    }
    std::memcpy(&t[h], &bits, 4);
  }
  return t;
}

}  // namespace

float HalfToFloat(uint16_t h) {
  static const std::array<float, 65536> table = MakeHalfTable();
  return table[h];
}

absl::StatusOr<std::shared_ptr<const Bytes>> MapFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    std::string msg = absl::StrCat(path, ": cannot open: ", std::strerror(err));
    if (err == ENOENT) return absl::NotFoundError(msg);
    return absl::FailedPreconditionError(msg);
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int err = errno;
    close(fd);
    return absl::FailedPreconditionError(absl::StrCat(path, ": cannot stat: ", std::strerror(err)));
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a regular file"));
  }
  const size_t size = static_cast<size_t>(st.st_size);
  void* addr = nullptr;
  if (size > 0) {
    addr = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (addr == MAP_FAILED) {
      int err = errno;
      close(fd);
      return absl::FailedPreconditionError(
          absl::StrCat(path, ": mmap failed: ", std::strerror(err)));
    }
    madvise(addr, size, MADV_SEQUENTIAL);
  }
  close(fd);
  return std::shared_ptr<const Bytes>(std::make_shared<MappedFile>(addr, size));
}

std::shared_ptr<const Bytes> CopyBytes(const uint8_t* data, size_t size) {
  return std::make_shared<OwnedBytes>(data, size);
}

}  // namespace internal

absl::StatusOr<std::unique_ptr<WeightSource>> OpenWeights(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) return OpenSafetensors(path);
  if (absl::EndsWith(path, ".safetensors") || absl::EndsWith(path, ".safetensors.index.json")) {
    return OpenSafetensors(path);
  }
  LASERD_ASSIGN_OR_RETURN(auto bytes, internal::MapFile(path));
  const internal::Bytes& b = *bytes;
  if (b.size() >= 4 && std::memcmp(b.data(), "GGUF", 4) == 0) {
    return internal::OpenGgufBytes(path, std::move(bytes));
  }
  // A safetensors file starts with a little-endian u64 header length and '{'.
  if (b.size() >= 9 && b.data()[8] == '{') {
    return OpenSafetensors(path);
  }
  return absl::InvalidArgumentError(
      absl::StrCat(path,
                   ": unrecognized weight file format (neither GGUF magic nor a "
                   "safetensors header; expected a GGUF file, a .safetensors file or a "
                   "model directory)"));
}

}  // namespace laserd::formats
