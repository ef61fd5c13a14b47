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
  v.push_back(model::kRouterMatrixType);
  for (const std::string& b : model::ExpertMatrixBaseTypes()) v.push_back(b + "[e]");
  for (const char* a : {"fc_in", "fc_up", "fc_out", "q_proj", "k_proj", "v_proj", "out_proj", "mlp",
                        "attn", "moe", "moe.in", "moe.up", "moe.out", "all"})
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
  if (name == model::kRouterMatrixType || model::ParseExpertMatrixType(name)) return name;
  auto it = Aliases().find(name);
  if (it != Aliases().end()) return it->second;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown matrix type '", name, "'; valid: ", ValidNames()));
}

absl::StatusOr<std::vector<std::string>> ExpandMatrixTypes(
    const std::vector<std::string>& names, const std::vector<std::string>& available) {
  const auto& bases = model::ExpertMatrixBaseTypes();
  std::vector<bool> chosen(available.size(), false);
  // Chooses every available type `pred` accepts; whether there was one.
  auto choose_if = [&](const auto& pred) {
    bool any = false;
    for (size_t i = 0; i < available.size(); ++i) {
      if (pred(available[i])) chosen[i] = any = true;
    }
    return any;
  };
  for (const std::string& name : names) {
    if (name == "all" || name == "mlp" || name == "attn" || name == "moe") {
      choose_if([&](const std::string& t) { return name == "all" || t.rfind(name + ".", 0) == 0; });
      continue;
    }
    // An expert matrix type without an index: that matrix of every expert.
    if (std::find(bases.begin(), bases.end(), name) != bases.end()) {
      const bool any = choose_if([&](const std::string& t) {
        auto ex = model::ParseExpertMatrixType(t);
        return ex && ex->first == name;
      });
      if (!any) {
        return absl::InvalidArgumentError(absl::StrCat(
            "matrix type '", name, "' does not exist in this model (it has no experts)",
            "; it has: ", absl::StrJoin(available, ", ")));
      }
      continue;
    }
    LASERD_ASSIGN_OR_RETURN(auto t, CanonicalMatrixType(name));
    if (!choose_if([&](const std::string& a) { return a == t; })) {
      return absl::InvalidArgumentError(
          absl::StrCat("matrix type '", name, "' (", t,
                       ") does not exist in this model; it has: ", absl::StrJoin(available, ", ")));
    }
  }
  std::vector<std::string> out;
  for (size_t i = 0; i < available.size(); ++i)
    if (chosen[i]) out.push_back(available[i]);
  return out;
}

}  // namespace laserd::laser
