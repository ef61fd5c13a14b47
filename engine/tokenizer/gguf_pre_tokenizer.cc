#include "engine/tokenizer/gguf_pre_tokenizer.h"

#include <utility>

#include "base/status_macros.h"
#include "engine/tokenizer/internal.h"

namespace laserd::tokenizer {

absl::StatusOr<GgufPreTokenizerRules> GgufPreTokenizerRulesFor(const std::string& pre) {
  LASERD_ASSIGN_OR_RETURN(internal::GgufPreTokenizer p, internal::GgufPreTokenizerFor(pre));
  return GgufPreTokenizerRules{std::move(p.regexes), p.ignore_merges, p.add_bos_default};
}

}  // namespace laserd::tokenizer
