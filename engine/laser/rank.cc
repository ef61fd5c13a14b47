#include "engine/laser/rank.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "engine/model/model.h"

namespace laserd::laser {
namespace {

absl::Status CheckDims(int64_t m, int64_t n) {
  if (m < 1 || n < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("a ", m, "x", n, " matrix has no rank to reduce"));
  }
  return absl::OkStatus();
}

const std::map<std::string, std::string>& Aliases() {
  static const auto* m = new std::map<std::string, std::string>{
      {"fc_in", "mlp.in"},  {"fc_up", "mlp.up"},  {"fc_out", "mlp.out"}, {"q_proj", "attn.q"},
      {"k_proj", "attn.k"}, {"v_proj", "attn.v"}, {"out_proj", "attn.o"}};
  return *m;
}

std::string ValidNames() {
  std::vector<std::string> v = model::CanonicalMatrixTypes();
  for (const char* a :
       {"fc_in", "fc_up", "fc_out", "q_proj", "k_proj", "v_proj", "out_proj", "mlp", "attn", "all"})
    v.push_back(a);
  return absl::StrJoin(v, ", ");
}

}  // namespace

std::string PaperAlias(const std::string& canonical) {
  for (const auto& [alias, type] : Aliases())
    if (type == canonical) return alias;
  return "";
}

absl::StatusOr<int64_t> KeptRankFromRho(int64_t m, int64_t n, double rho) {
  if (!(rho > 0.0 && rho <= 1.0)) {
    return absl::InvalidArgumentError(absl::StrCat("rho must be in (0, 1], got ", rho));
  }
  LASERD_RETURN_IF_ERROR(CheckDims(m, n));
  const int64_t mn = std::min(m, n);
  const double k = std::floor(static_cast<double>(mn) * rho);
  return std::clamp<int64_t>(static_cast<int64_t>(k), 1, mn);
}

absl::StatusOr<int64_t> KeptRankFromRate(int64_t m, int64_t n, double rate) {
  if (!(rate >= 0.0 && rate < 10.0)) {
    return absl::InvalidArgumentError(absl::StrCat("rate must be in [0, 10), got ", rate));
  }
  LASERD_RETURN_IF_ERROR(CheckDims(m, n));
  const int64_t mn = std::min(m, n);
  // Python: int(mn * ((10 - rate) * 0.1)); each operation rounded to double
  // (no a*b+c here, so no contraction into an FMA can change it), then
  // truncated toward zero.
  const double frac = (10.0 - rate) * 0.1;
  const double prod = static_cast<double>(mn) * frac;
  return std::clamp<int64_t>(static_cast<int64_t>(prod), 1, mn);
}

absl::StatusOr<std::string> CanonicalMatrixType(const std::string& name) {
  const auto& canon = model::CanonicalMatrixTypes();
  if (std::find(canon.begin(), canon.end(), name) != canon.end()) return name;
  auto it = Aliases().find(name);
  if (it != Aliases().end()) return it->second;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown matrix type '", name, "'; valid: ", ValidNames()));
}

absl::StatusOr<std::vector<std::string>> ExpandMatrixTypes(
    const std::vector<std::string>& names, const std::vector<std::string>& available) {
  auto has = [&](const std::string& t) {
    return std::find(available.begin(), available.end(), t) != available.end();
  };
  std::vector<bool> chosen(model::CanonicalMatrixTypes().size(), false);
  const auto& canon = model::CanonicalMatrixTypes();
  auto choose = [&](const std::string& t) {
    chosen[std::find(canon.begin(), canon.end(), t) - canon.begin()] = true;
  };
  for (const std::string& name : names) {
    if (name == "all" || name == "mlp" || name == "attn") {
      for (const std::string& t : canon) {
        const bool in_group = name == "all" || t.rfind(name + ".", 0) == 0;
        if (in_group && has(t)) choose(t);
      }
      continue;
    }
    LASERD_ASSIGN_OR_RETURN(auto t, CanonicalMatrixType(name));
    if (!has(t)) {
      return absl::InvalidArgumentError(
          absl::StrCat("matrix type '", name, "' (", t,
                       ") does not exist in this model; it has: ", absl::StrJoin(available, ", ")));
    }
    choose(t);
  }
  std::vector<std::string> out;
  for (size_t i = 0; i < canon.size(); ++i)
    if (chosen[i]) out.push_back(canon[i]);
  return out;
}

}  // namespace laserd::laser
