#include "engine/laser/paper_svd.h"

#include "absl/strings/str_cat.h"

namespace laserd::laser {

uint64_t PaperSeed(uint64_t seed, const std::string& type, int64_t layer, int64_t k) {
  const std::string key = absl::StrCat(seed, "/", type, "/", layer, "/", k);
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : key) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

kernels::SvdOptions OptionsForRank(const kernels::SvdOptions& opts, const std::string& type,
                                   int64_t layer, int64_t k) {
  kernels::SvdOptions o = opts;
  if (PerRankDecomposition(opts)) o.seed = PaperSeed(opts.seed, type, layer, k);
  return o;
}

}  // namespace laserd::laser
