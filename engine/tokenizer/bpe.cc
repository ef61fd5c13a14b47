// BPE over token ids: character split, byte fallback / unk, rank-ordered merges.
#include <queue>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status_macros.h"
#include "engine/tokenizer/internal.h"

namespace laserd::tokenizer::internal {

absl::StatusOr<BpeModel> BpeModel::Create(
    std::vector<std::string> vocab, const std::vector<std::pair<std::string, std::string>>& merges,
    Options options, bool skip_bad_merges, bool first_merge_wins) {
  BpeModel m;
  m.options_ = std::move(options);
  m.token_to_id_.reserve(vocab.size());
  for (size_t i = 0; i < vocab.size(); ++i) {
    // llama.cpp: a repeated token text maps to its last id; keep that behaviour.
    m.token_to_id_[vocab[i]] = static_cast<int32_t>(i);
  }
  m.id_to_token_ = std::move(vocab);
  LASERD_RETURN_IF_ERROR(m.Finish(merges, skip_bad_merges, first_merge_wins));
  return m;
}

absl::StatusOr<BpeModel> BpeModel::CreateFromMap(
    const std::vector<std::pair<std::string, int32_t>>& vocab,
    const std::vector<std::pair<std::string, std::string>>& merges, Options options) {
  BpeModel m;
  m.options_ = std::move(options);
  int32_t max_id = -1;
  for (const auto& [tok, id] : vocab) {
    if (id < 0 || id >= (1 << 21)) {
      return absl::InvalidArgumentError(absl::StrCat("token \"", tok, "\" has invalid id ", id));
    }
    max_id = std::max(max_id, id);
  }
  m.id_to_token_.assign(static_cast<size_t>(max_id + 1), std::string());
  m.token_to_id_.reserve(vocab.size());
  for (const auto& [tok, id] : vocab) {
    m.token_to_id_[tok] = id;
    m.id_to_token_[id] = tok;
  }
  LASERD_RETURN_IF_ERROR(m.Finish(merges, /*skip_bad_merges=*/false,
                                  /*first_merge_wins=*/false));
  return m;
}

absl::Status BpeModel::Finish(const std::vector<std::pair<std::string, std::string>>& merges,
                              bool skip_bad_merges, bool first_merge_wins) {
  merges_.reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [a, b] = merges[rank];
    auto ia = token_to_id_.find(a);
    auto ib = token_to_id_.find(b);
    auto ic = token_to_id_.find(a + b);
    if (ia == token_to_id_.end() || ib == token_to_id_.end() || ic == token_to_id_.end()) {
      if (skip_bad_merges) continue;
      const std::string& missing = ia == token_to_id_.end()   ? a
                                   : ib == token_to_id_.end() ? b
                                                              : a + b;
      return absl::InvalidArgumentError(absl::StrCat("merge #", rank, " (\"", a, "\" \"", b,
                                                     "\") uses token \"", missing,
                                                     "\" which is not in the vocabulary"));
    }
    const uint64_t key = PairKey(ia->second, ib->second);
    const std::pair<int32_t, int32_t> val(static_cast<int32_t>(rank), ic->second);
    if (first_merge_wins) {
      merges_.emplace(key, val);
    } else {
      merges_[key] = val;
    }
  }
  if (options_.unk_token.has_value()) {
    auto it = token_to_id_.find(*options_.unk_token);
    if (it != token_to_id_.end()) unk_id_ = it->second;
  }
  byte_tokens_.assign(256, -1);
  for (int b = 0; b < 256; ++b) {
    auto it = token_to_id_.find(absl::StrFormat("<0x%02X>", b));
    if (it != token_to_id_.end()) byte_tokens_[b] = it->second;
  }
  return absl::OkStatus();
}

std::optional<int32_t> BpeModel::TokenToId(std::string_view token) const {
  auto it = token_to_id_.find(std::string(token));
  if (it == token_to_id_.end()) return std::nullopt;
  return it->second;
}

const std::string& BpeModel::IdToToken(int32_t id) const {
  static const std::string* empty = new std::string();
  if (id < 0 || id >= static_cast<int32_t>(id_to_token_.size())) return *empty;
  return id_to_token_[id];
}

absl::Status BpeModel::TokenizeWord(std::string_view word, std::vector<int32_t>* out) const {
  if (word.empty()) return absl::OkStatus();
  if (options_.ignore_merges) {
    auto it = token_to_id_.find(std::string(word));
    if (it != token_to_id_.end()) {
      out->push_back(it->second);
      return absl::OkStatus();
    }
  }
  struct Sym {
    int32_t id;
    int32_t prev, next;
    size_t len;  // 0 = merged away
  };
  std::vector<Sym> syms;
  syms.reserve(word.size());
  auto add = [&](int32_t id, size_t len) {
    const int32_t idx = static_cast<int32_t>(syms.size());
    syms.push_back({id, idx - 1, -1, len});
    if (idx > 0) syms[idx - 1].next = idx;
  };
  // Mirrors HF BPE::merge_word, including fuse_unk and byte fallback.
  std::optional<std::pair<int32_t, size_t>> unk;
  size_t pos = 0;
  std::string piece;
  while (pos < word.size()) {
    const size_t start = pos;
    size_t len = Utf8Len(static_cast<unsigned char>(word[pos]));
    if (start + len > word.size()) len = word.size() - start;
    pos = start + len;
    piece.assign(word.substr(start, len));
    if (start > 0 && !options_.continuing_subword_prefix.empty()) {
      piece = options_.continuing_subword_prefix + piece;
    }
    if (pos == word.size() && !options_.end_of_word_suffix.empty()) {
      piece += options_.end_of_word_suffix;
    }
    auto it = token_to_id_.find(piece);
    if (it != token_to_id_.end()) {
      if (unk.has_value()) {
        add(unk->first, unk->second);
        unk.reset();
      }
      add(it->second, len);
      continue;
    }
    if (options_.byte_fallback) {
      bool all = true;
      for (unsigned char c : piece) all = all && byte_tokens_[c] >= 0;
      if (all) {
        if (unk.has_value()) {
          add(unk->first, unk->second);
          unk.reset();
        }
        for (unsigned char c : piece) add(byte_tokens_[c], 1);
        continue;
      }
    }
    if (options_.unk_token.has_value()) {
      if (!unk_id_.has_value()) {
        return absl::InvalidArgumentError(
            absl::StrCat("unknown token \"", *options_.unk_token, "\" is not in the vocabulary"));
      }
      if (unk.has_value() && options_.fuse_unk) {
        unk->second += len;
      } else {
        if (unk.has_value()) add(unk->first, unk->second);
        unk = std::make_pair(*unk_id_, len);
      }
    }
    // No unk token and no byte fallback: the character is dropped (as HF does).
  }
  if (unk.has_value()) add(unk->first, unk->second);

  struct Cand {
    int32_t rank;
    int32_t pos;
    int32_t new_id;
    bool operator<(const Cand& o) const {  // max-heap: lowest rank, then leftmost, on top
      if (rank != o.rank) return rank > o.rank;
      return pos > o.pos;
    }
  };
  std::priority_queue<Cand> queue;
  auto push_pair = [&](int32_t left) {
    if (left < 0) return;
    const int32_t right = syms[left].next;
    if (right < 0) return;
    auto it = merges_.find(PairKey(syms[left].id, syms[right].id));
    if (it != merges_.end()) queue.push({it->second.first, left, it->second.second});
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(syms.size()); ++i) push_pair(i);
  while (!queue.empty()) {
    const Cand top = queue.top();
    queue.pop();
    Sym& left = syms[top.pos];
    if (left.len == 0 || left.next < 0) continue;
    Sym& right = syms[left.next];
    auto it = merges_.find(PairKey(left.id, right.id));
    if (it == merges_.end() || it->second.second != top.new_id) continue;  // stale entry
    left.id = top.new_id;
    left.len += right.len;
    right.len = 0;
    left.next = right.next;
    if (left.next >= 0) syms[left.next].prev = top.pos;
    push_pair(left.prev);
    push_pair(top.pos);
  }
  for (const Sym& s : syms) {
    if (s.len != 0) out->push_back(s.id);
  }
  return absl::OkStatus();
}

}  // namespace laserd::tokenizer::internal
