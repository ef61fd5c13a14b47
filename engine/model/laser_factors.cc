#include "engine/model/laser_factors.h"

#include <cblas.h>

#include <map>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"

namespace laserd::model {
namespace {

class FactoredSource : public formats::WeightSource {
 public:
  FactoredSource(const formats::WeightSource& src, std::vector<formats::TensorInfo> tensors,
                 std::map<std::string, std::pair<std::string, std::string>> pairs)
      : src_(src), tensors_(std::move(tensors)), pairs_(std::move(pairs)) {}

  formats::FileFormat format() const override { return src_.format(); }
  const std::string& path() const override { return src_.path(); }
  const nlohmann::json& metadata() const override { return src_.metadata(); }
  const std::vector<formats::TensorInfo>& tensors() const override { return tensors_; }
  bool Has(const std::string& name) const override {
    if (pairs_.count(name)) return true;
    return src_.Has(name) && !absl::EndsWith(name, kLaserFactorA) &&
           !absl::EndsWith(name, kLaserFactorB);
  }
  absl::StatusOr<formats::TensorF32> LoadF32(const std::string& name) const override {
    auto it = pairs_.find(name);
    if (it == pairs_.end()) {
      if (!Has(name)) {
        return absl::NotFoundError(absl::StrCat(src_.path(), ": tensor ", name, " not found"));
      }
      return src_.LoadF32(name);
    }
    LASERD_ASSIGN_OR_RETURN(auto a, src_.LoadF32(it->second.first));
    LASERD_ASSIGN_OR_RETURN(auto b, src_.LoadF32(it->second.second));
    const int64_t rows = a.shape[0], cols = b.shape[0], k = a.shape[1];
    formats::TensorF32 t;
    t.shape = {rows, cols};
    t.data.resize(rows * cols);
    // [rows, cols] = a [rows, k] · b [cols, k]ᵀ.
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, cols, k, 1.0f, a.data.data(), k,
                b.data.data(), k, 0.0f, t.data.data(), cols);
    return t;
  }

 private:
  const formats::WeightSource& src_;
  std::vector<formats::TensorInfo> tensors_;
  std::map<std::string, std::pair<std::string, std::string>> pairs_;  // dense -> (a, b)
};

}  // namespace

absl::StatusOr<std::unique_ptr<formats::WeightSource>> ExpandLaserFactors(
    const formats::WeightSource& src) {
  std::map<std::string, const formats::TensorInfo*> a, b;
  std::vector<formats::TensorInfo> tensors;
  for (const formats::TensorInfo& t : src.tensors()) {
    const std::string& n = t.name;
    const size_t la = sizeof(kLaserFactorA) - 1, lb = sizeof(kLaserFactorB) - 1;
    if (absl::EndsWith(n, kLaserFactorA)) {
      a[n.substr(0, n.size() - la)] = &t;
    } else if (absl::EndsWith(n, kLaserFactorB)) {
      b[n.substr(0, n.size() - lb)] = &t;
    } else {
      tensors.push_back(t);
    }
  }
  if (a.empty() && b.empty()) return std::unique_ptr<formats::WeightSource>();
  std::map<std::string, std::pair<std::string, std::string>> pairs;
  for (const auto& [name, ta] : a) {
    auto itb = b.find(name);
    if (itb == b.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat(src.path(), ": factor ", ta->name, " has no ", name, kLaserFactorB));
    }
    const formats::TensorInfo* tb = itb->second;
    if (ta->shape.size() != 2 || tb->shape.size() != 2 || ta->shape[1] != tb->shape[1] ||
        ta->shape[1] < 1 || ta->shape[0] < 1 || tb->shape[0] < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat(src.path(), ": factors of ", name,
                       " must be 2-D [rows, k] and [cols, k] with the same k >= 1"));
    }
    if (src.Has(name)) {
      return absl::InvalidArgumentError(
          absl::StrCat(src.path(), ": tensor ", name, " is stored both dense and factored"));
    }
    pairs[name] = {ta->name, tb->name};
    tensors.push_back({name, {ta->shape[0], tb->shape[0]}, formats::DType::kF32});
  }
  for (const auto& [name, tb] : b) {
    if (!a.count(name)) {
      return absl::InvalidArgumentError(
          absl::StrCat(src.path(), ": factor ", tb->name, " has no ", name, kLaserFactorA));
    }
  }
  return std::unique_ptr<formats::WeightSource>(
      new FactoredSource(src, std::move(tensors), std::move(pairs)));
}

}  // namespace laserd::model
