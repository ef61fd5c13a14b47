#include "server/sweep_io.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status_macros.h"
#include "engine/model/architecture.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "nlohmann/json.hpp"
#include "proto/spec_io.h"

namespace laserd::server {
namespace {

namespace pb = ::laser::v1;
using google::protobuf::util::JsonPrintOptions;

absl::Status Invalid(const std::string& field, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("spec.", field, ": ", what));
}

// A value above its documented limit (SpecLimits).
absl::Status AtMost(const std::string& field, int64_t value, int64_t limit) {
  if (value <= limit) return absl::OkStatus();
  return Invalid(field, absl::StrCat(value, " is above the limit ", limit));
}

// A repeated field with more values than its documented limit.
absl::Status CountAtMost(const std::string& field, int64_t count, int64_t limit) {
  if (count <= limit) return absl::OkStatus();
  return Invalid(field, absl::StrCat(count, " values; the limit is ", limit));
}

}  // namespace

absl::StatusOr<pb::SweepSpec> ReadSweepSpec(const std::string& path) {
  return proto::ReadSweepSpecFile(path);
}

namespace {

// A sweep of zero interventions alone needs no rho or rate.
bool OnlyZeroKinds(const pb::SweepSpec& spec) {
  if (spec.intervention_kinds_size() == 0) return false;
  for (int k : spec.intervention_kinds()) {
    if (k != pb::INTERVENTION_KIND_ZERO) return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<HeadlessSweep> SweepConfigFromSpec(const pb::SweepSpec& spec) {
  HeadlessSweep h;
  laser::SweepConfig& c = h.config;
  // dataset
  if (!spec.has_dataset() || spec.dataset().source_case() == pb::DatasetRef::SOURCE_NOT_SET) {
    return Invalid("dataset", "required (set dataset.path to a JSONL file)");
  }
  if (spec.dataset().has_dataset_id()) {
    return Invalid("dataset.dataset_id",
                   "uploaded datasets exist only in a running server; the headless sweep "
                   "needs dataset.path");
  }
  if (spec.dataset().path().empty()) return Invalid("dataset.path", "must not be empty");
  h.data_path = spec.dataset().path();
  // task
  switch (spec.task()) {
    case pb::TASK_KIND_COMPLETION:
      c.task = laser::TaskFilter::kCompletion;
      break;
    case pb::TASK_KIND_CHOICE:
      c.task = laser::TaskFilter::kChoice;
      break;
    case pb::TASK_KIND_UNSPECIFIED:
      c.task = laser::TaskFilter::kAny;
      break;
    case pb::TASK_KIND_GENERATION:
      c.task = laser::TaskFilter::kCompletion;
      break;
    default:
      return Invalid("task", absl::StrCat("unknown value ", spec.task()));
  }
  // match and generation
  const bool generation = spec.task() == pb::TASK_KIND_GENERATION;
  switch (spec.match()) {
    case pb::MATCH_RULE_UNSPECIFIED:
      c.match.rule = generation ? eval::MatchRule::kContains : eval::MatchRule::kGreedy;
      break;
    case pb::MATCH_RULE_GREEDY:
    case pb::MATCH_RULE_TOP1_DECODED:
      if (generation) {
        return Invalid("match", absl::StrCat(pb::MatchRule_Name(spec.match()),
                                             " does not apply to TASK_KIND_GENERATION (use "
                                             "EXACT, PREFIX or CONTAINS)"));
      }
      if (spec.task() == pb::TASK_KIND_CHOICE && spec.match() == pb::MATCH_RULE_TOP1_DECODED) {
        return Invalid("match",
                       "MATCH_RULE_TOP1_DECODED needs completion records, but the task "
                       "is TASK_KIND_CHOICE");
      }
      c.match.rule = spec.match() == pb::MATCH_RULE_GREEDY ? eval::MatchRule::kGreedy
                                                           : eval::MatchRule::kTop1Decoded;
      break;
    case pb::MATCH_RULE_EXACT:
    case pb::MATCH_RULE_PREFIX:
    case pb::MATCH_RULE_CONTAINS:
      if (!generation) {
        return Invalid("match", absl::StrCat(pb::MatchRule_Name(spec.match()),
                                             " needs task TASK_KIND_GENERATION"));
      }
      c.match.rule = spec.match() == pb::MATCH_RULE_EXACT    ? eval::MatchRule::kExact
                     : spec.match() == pb::MATCH_RULE_PREFIX ? eval::MatchRule::kPrefix
                                                             : eval::MatchRule::kContains;
      break;
    default:
      return Invalid("match", absl::StrCat("unknown value ", spec.match()));
  }
  if (spec.has_generation() && !generation) {
    return Invalid("generation", "applies to task TASK_KIND_GENERATION only");
  }
  if (generation) {
    const pb::GenerationOptions& g = spec.generation();
    const int64_t n = g.max_new_tokens() == 0 ? eval::kDefaultNewTokens : g.max_new_tokens();
    if (n < eval::kMinNewTokens || n > eval::kMaxNewTokens) {
      return Invalid("generation.max_new_tokens",
                     absl::StrCat(g.max_new_tokens(), " is not in [", eval::kMinNewTokens, ", ",
                                  eval::kMaxNewTokens, "]"));
    }
    LASERD_RETURN_IF_ERROR(CountAtMost("generation.stop_strings", g.stop_strings_size(), 16));
    for (int i = 0; i < g.stop_strings_size(); ++i) {
      if (g.stop_strings(i).empty()) {
        return Invalid(absl::StrCat("generation.stop_strings[", i, "]"), "must not be empty");
      }
    }
    c.match.max_new_tokens = n;
    c.match.stop_strings.assign(g.stop_strings().begin(), g.stop_strings().end());
    c.match.match_prompt = g.match_prompt();
  }
  using L = SpecLimits;
  LASERD_RETURN_IF_ERROR(CountAtMost("matrix_types", spec.matrix_types_size(), L::kMatrixTypes));
  c.matrix_types.assign(spec.matrix_types().begin(), spec.matrix_types().end());
  LASERD_RETURN_IF_ERROR(CountAtMost("experts", spec.experts_size(), L::kExperts));
  c.experts.assign(spec.experts().begin(), spec.experts().end());
  // layers
  LASERD_RETURN_IF_ERROR(
      CountAtMost("layers.indices", spec.layers().indices_size(), L::kLayerIndices));
  LASERD_RETURN_IF_ERROR(
      CountAtMost("layers.ranges", spec.layers().ranges_size(), L::kLayerRanges));
  for (int i = 0; i < spec.layers().indices_size(); ++i) {
    LASERD_RETURN_IF_ERROR(
        AtMost(absl::StrCat("layers.indices[", i, "]"), spec.layers().indices(i), L::kLayer));
    c.layer_indices.push_back(spec.layers().indices(i));
  }
  for (int i = 0; i < spec.layers().ranges_size(); ++i) {
    const pb::LayerRange& r = spec.layers().ranges(i);
    const std::string where = absl::StrCat("layers.ranges[", i, "]");
    LASERD_RETURN_IF_ERROR(AtMost(where + ".start", r.start(), L::kLayer));
    if (r.has_stop()) LASERD_RETURN_IF_ERROR(AtMost(where + ".stop", r.stop(), L::kLayer));
    LASERD_RETURN_IF_ERROR(AtMost(where + ".step", r.step(), L::kLayer));
    laser::LayerRange lr;
    lr.start = r.start();
    if (r.has_stop()) lr.stop = r.stop();
    if (r.step() < 0) {
      return Invalid(where + ".step", absl::StrCat(r.step(), " is negative"));
    }
    lr.step = r.step();
    c.layer_ranges.push_back(lr);
  }
  // ranks
  if (spec.has_rho()) {
    if (spec.rho().values_size() == 0)
      return Invalid("rho.values", "at least one value is required");
    LASERD_RETURN_IF_ERROR(CountAtMost("rho.values", spec.rho().values_size(), L::kRankValues));
    for (int i = 0; i < spec.rho().values_size(); ++i) {
      const double v = spec.rho().values(i);
      if (!(v > 0.0 && v <= 1.0)) {
        return Invalid(absl::StrCat("rho.values[", i, "]"), absl::StrCat(v, " is not in (0, 1]"));
      }
      c.ranks.push_back(v);
    }
  } else if (spec.has_rate()) {
    if (spec.rate().values_size() == 0) {
      return Invalid("rate.values", "at least one value is required");
    }
    LASERD_RETURN_IF_ERROR(CountAtMost("rate.values", spec.rate().values_size(), L::kRankValues));
    for (int i = 0; i < spec.rate().values_size(); ++i) {
      const double v = spec.rate().values(i);
      if (!(v >= 0.0 && v < 10.0)) {
        return Invalid(absl::StrCat("rate.values[", i, "]"), absl::StrCat(v, " is not in [0, 10)"));
      }
      c.ranks.push_back(v);
    }
    c.ranks_are_rates = true;
  } else if (!spec.add_suggested_rank() && !OnlyZeroKinds(spec)) {
    return Invalid("rank", "required: give rho.values or rate.values (or add_suggested_rank)");
  }
  // Every matrix's Marchenko-Pastur rank too (engine/laser/sweep.h); with no
  // rho/rate, the suggested ranks alone.
  c.add_suggested_rank = spec.add_suggested_rank();
  // svd
  const pb::SvdOptions& svd = spec.svd();
  switch (svd.method()) {
    case pb::SVD_METHOD_UNSPECIFIED:
    case pb::SVD_METHOD_AUTO:
      c.svd.method = kernels::SvdMethod::kAuto;
      break;
    case pb::SVD_METHOD_EXACT:
      c.svd.method = kernels::SvdMethod::kExact;
      break;
    case pb::SVD_METHOD_RANDOMIZED:
      c.svd.method = kernels::SvdMethod::kRandomized;
      break;
    case pb::SVD_METHOD_PAPER:
      c.svd.method = kernels::SvdMethod::kPaper;
      break;
    default:
      return Invalid("svd.method", absl::StrCat("unknown value ", svd.method()));
  }
  if (svd.has_oversampling()) {
    if (svd.oversampling() < 0) {
      return Invalid("svd.oversampling", absl::StrCat(svd.oversampling(), " is negative"));
    }
    LASERD_RETURN_IF_ERROR(AtMost("svd.oversampling", svd.oversampling(), L::kOversampling));
    if (c.svd.method == kernels::SvdMethod::kPaper && svd.oversampling() != 0) {
      return Invalid(
          "svd.oversampling",
          absl::StrCat(svd.oversampling(), ": the paper method uses none (absent or 0)"));
    }
    c.svd.oversampling = svd.oversampling();
  }
  if (svd.has_power_iterations()) {
    if (svd.power_iterations() < 0) {
      return Invalid("svd.power_iterations", absl::StrCat(svd.power_iterations(), " is negative"));
    }
    LASERD_RETURN_IF_ERROR(
        AtMost("svd.power_iterations", svd.power_iterations(), L::kPowerIterations));
    c.svd.power_iters = svd.power_iterations();
  }
  c.svd.seed = svd.seed();
  c.round_to_source_dtype = spec.round_to_source_dtype();
  for (int i = 0; i < spec.intervention_kinds_size(); ++i) {
    switch (spec.intervention_kinds(i)) {
      case pb::INTERVENTION_KIND_UNSPECIFIED:
      case pb::INTERVENTION_KIND_RANK_REDUCTION:
        c.kinds.push_back(laser::InterventionKind::kRankReduction);
        break;
      case pb::INTERVENTION_KIND_ZERO:
        c.kinds.push_back(laser::InterventionKind::kZero);
        break;
      case pb::INTERVENTION_KIND_PRUNE:
        c.kinds.push_back(laser::InterventionKind::kPrune);
        break;
      default:
        return Invalid(absl::StrCat("intervention_kinds[", i, "]"),
                       absl::StrCat("unknown value ", spec.intervention_kinds(i)));
    }
  }
  // split
  switch (spec.split().mode()) {
    case pb::SPLIT_MODE_UNSPECIFIED:
    case pb::SPLIT_MODE_FIRST:
      c.split.mode = eval::SplitMode::kFirst;
      break;
    case pb::SPLIT_MODE_SHUFFLE:
      c.split.mode = eval::SplitMode::kShuffle;
      break;
    default:
      return Invalid("split.mode", absl::StrCat("unknown value ", spec.split().mode()));
  }
  if (spec.split().has_validation_fraction()) {
    const double f = spec.split().validation_fraction();
    if (!(f > 0.0 && f < 1.0)) {
      return Invalid("split.validation_fraction", absl::StrCat(f, " is not in (0, 1)"));
    }
    c.split.val_fraction = f;
  }
  c.split.seed = spec.split().seed();
  // top_k
  if (spec.top_k_size() > 0) {
    c.topk.clear();
    LASERD_RETURN_IF_ERROR(CountAtMost("top_k", spec.top_k_size(), L::kTopKValues));
    std::set<int> seen;
    for (int i = 0; i < spec.top_k_size(); ++i) {
      const int k = spec.top_k(i);
      if (k < 1) return Invalid(absl::StrCat("top_k[", i, "]"), absl::StrCat(k, " is not >= 1"));
      LASERD_RETURN_IF_ERROR(AtMost(absl::StrCat("top_k[", i, "]"), k, L::kTopK));
      if (!seen.insert(k).second) {
        return Invalid(absl::StrCat("top_k[", i, "]"), absl::StrCat(k, " is repeated"));
      }
      c.topk.push_back(k);
    }
  }
  // batch
  if (spec.batch().batch_size() < 0) {
    return Invalid("batch.batch_size", absl::StrCat(spec.batch().batch_size(), " is negative"));
  }
  if (spec.batch().max_batch_tokens() < 0) {
    return Invalid("batch.max_batch_tokens",
                   absl::StrCat(spec.batch().max_batch_tokens(), " is negative"));
  }
  LASERD_RETURN_IF_ERROR(AtMost("batch.batch_size", spec.batch().batch_size(), L::kBatchSize));
  LASERD_RETURN_IF_ERROR(
      AtMost("batch.max_batch_tokens", spec.batch().max_batch_tokens(), L::kMaxBatchTokens));
  c.batch_sequences = spec.batch().batch_size();
  c.batch_tokens = spec.batch().max_batch_tokens();
  // The driver tests every new best against the baseline example by example
  // (and keeps the outcomes with spec.keep_example_outputs), so every result
  // brings its examples' results.
  c.keep_examples = true;
  if (c.batch_tokens > 0) c.match.batch_tokens = c.batch_tokens;
  // composition
  switch (spec.composition().mode()) {
    case pb::COMPOSITION_MODE_UNSPECIFIED:
    case pb::COMPOSITION_MODE_NONE:
      c.compose = false;
      break;
    case pb::COMPOSITION_MODE_GREEDY:
      c.compose = true;
      break;
    default:
      return Invalid("composition.mode", absl::StrCat("unknown value ", spec.composition().mode()));
  }
  if (spec.composition().max_interventions() < 0) {
    return Invalid("composition.max_interventions",
                   absl::StrCat(spec.composition().max_interventions(), " is negative"));
  }
  LASERD_RETURN_IF_ERROR(AtMost("composition.max_interventions",
                                spec.composition().max_interventions(),
                                L::kCompositionMaxInterventions));
  c.compose_max = spec.composition().max_interventions();
  // shard
  const uint32_t count = spec.shard().count(), index = spec.shard().index();
  LASERD_RETURN_IF_ERROR(AtMost("shard.count", count, L::kShardCount));
  if (count <= 1 && index != 0) {
    return Invalid("shard.index", absl::StrCat(index, " needs shard.count > ", index));
  }
  if (count > 1 && index >= count) {
    return Invalid("shard.index", absl::StrCat(index, " is not < shard.count ", count));
  }
  if (count > 1 && c.compose) {
    return Invalid("composition.mode", "greedy composition requires an unsharded sweep");
  }
  c.shard_index = index;
  c.shard_count = count <= 1 ? 1 : count;
  return h;
}

absl::Status SpecError(const absl::Status& s, absl::string_view other_prefix) {
  if (s.ok()) return s;
  static const char* kFields[] = {"matrix_types", "experts", "layers.",    "rho.",        "rate.",
                                  "task:",        "split:",  "shard:",     "composition", "top_k",
                                  "batch:",       "match:",  "generation."};
  for (const char* f : kFields) {
    if (absl::StartsWith(s.message(), f)) {
      return absl::Status(s.code(), absl::StrCat("spec.", s.message()));
    }
  }
  if (other_prefix.empty() || absl::StartsWith(s.message(), "spec.")) return s;
  return absl::Status(s.code(), absl::StrCat(other_prefix, s.message()));
}

pb::SweepSpec RecordedSpec(const pb::SweepSpec& spec) {
  pb::SweepSpec r = spec;
  r.clear_shard();
  return r;
}

std::string SweepId(const pb::SweepSpec& recorded, const std::string& model_identity) {
  const std::string text = absl::StrCat(JsonLine(recorded), "\n", model_identity);
  uint64_t h = 1469598103934665603ull;
  for (unsigned char ch : text) {
    h ^= ch;
    h *= 1099511628211ull;
  }
  return absl::StrFormat("sweep-%016x", h);
}

pb::Metrics MetricsProto(const eval::Aggregate& a) {
  pb::Metrics m;
  m.set_examples(a.count);
  m.set_correct(a.count > 0 ? std::llround(a.accuracy * a.count / 100.0) : 0);
  m.set_accuracy(a.accuracy);
  m.set_log_loss(a.log_loss);
  for (size_t i = 0; i < a.topk.size() && i < a.topk_accuracy.size(); ++i) {
    (*m.mutable_top_k_accuracy())[a.topk[i]] = a.topk_accuracy[i];
  }
  if (a.generated > 0) {
    m.set_f1(a.f1);
    m.set_precision(a.precision);
    m.set_recall(a.recall);
    m.set_generated_tokens(a.generated_tokens);
  }
  return m;
}

pb::Evaluation EvaluationProto(const laser::SplitMetrics& m) {
  pb::Evaluation e;
  *e.mutable_validation() = MetricsProto(m.validation);
  *e.mutable_test() = MetricsProto(m.test);
  return e;
}

namespace {

pb::SvdMethod SvdMethodProto(kernels::SvdMethod m) {
  switch (m) {
    case kernels::SvdMethod::kExact:
      return pb::SVD_METHOD_EXACT;
    case kernels::SvdMethod::kRandomized:
      return pb::SVD_METHOD_RANDOMIZED;
    case kernels::SvdMethod::kPaper:
      return pb::SVD_METHOD_PAPER;
    case kernels::SvdMethod::kAuto:
      return pb::SVD_METHOD_AUTO;
  }
  return pb::SVD_METHOD_UNSPECIFIED;
}

kernels::SvdMethod SvdMethodEngine(pb::SvdMethod m) {
  switch (m) {
    case pb::SVD_METHOD_RANDOMIZED:
      return kernels::SvdMethod::kRandomized;
    case pb::SVD_METHOD_PAPER:
      return kernels::SvdMethod::kPaper;
    default:
      return kernels::SvdMethod::kExact;
  }
}

}  // namespace

pb::Intervention InterventionProto(const laser::Intervention& iv) {
  pb::Intervention p;
  // An expert's matrix "moe.in[e]" is matrix_type "moe.in" with expert e.
  if (auto ex = model::ParseExpertMatrixType(iv.type)) {
    p.set_matrix_type(ex->first);
    p.set_expert(static_cast<int32_t>(ex->second));
  } else {
    p.set_matrix_type(iv.type);
  }
  p.set_layer(static_cast<int32_t>(iv.layer));
  p.set_rho(iv.rho);
  if (iv.rate) p.set_rate(*iv.rate);
  p.set_rank_source(iv.suggested ? pb::RANK_SOURCE_SUGGESTED
                    : iv.rate    ? pb::RANK_SOURCE_RATE
                                 : pb::RANK_SOURCE_RHO);
  p.set_rank(iv.rank);
  p.set_max_rank(iv.max_rank);
  p.set_rows(iv.rows);
  p.set_cols(iv.cols);
  p.set_relative_error(iv.relative_error);
  if (iv.kind == laser::InterventionKind::kRankReduction) {
    p.set_svd_method(SvdMethodProto(iv.svd_method));
  } else {
    // Zero and prune: no SVD; the kind and the entries set to 0.
    p.set_kind(iv.kind == laser::InterventionKind::kZero ? pb::INTERVENTION_KIND_ZERO
                                                         : pb::INTERVENTION_KIND_PRUNE);
    p.set_zeroed_entries(iv.zeroed);
  }
  return p;
}

std::string MatrixName(const pb::Intervention& p) {
  return p.has_expert() ? model::ExpertMatrixType(p.matrix_type(), p.expert()) : p.matrix_type();
}

laser::Intervention InterventionFromProto(const pb::Intervention& p, int64_t plan_index) {
  laser::Intervention iv;
  iv.plan_index = plan_index;
  iv.type = MatrixName(p);
  iv.layer = p.layer();
  iv.rho = p.rho();
  if (p.has_rate()) iv.rate = p.rate();
  iv.suggested = p.rank_source() == pb::RANK_SOURCE_SUGGESTED;
  iv.rank = p.rank();
  iv.max_rank = p.max_rank();
  iv.rows = p.rows();
  iv.cols = p.cols();
  iv.relative_error = p.relative_error();
  iv.svd_method = SvdMethodEngine(p.svd_method());
  iv.kind = p.kind() == pb::INTERVENTION_KIND_ZERO    ? laser::InterventionKind::kZero
            : p.kind() == pb::INTERVENTION_KIND_PRUNE ? laser::InterventionKind::kPrune
                                                      : laser::InterventionKind::kRankReduction;
  iv.zeroed = p.zeroed_entries();
  return iv;
}

pb::MetricDeltas Deltas(const pb::Metrics& edited, const pb::Metrics& base) {
  pb::MetricDeltas d;
  d.set_accuracy(edited.accuracy() - base.accuracy());
  d.set_log_loss(edited.log_loss() - base.log_loss());
  for (const auto& [k, v] : edited.top_k_accuracy()) {
    auto it = base.top_k_accuracy().find(k);
    if (it != base.top_k_accuracy().end()) (*d.mutable_top_k_accuracy())[k] = v - it->second;
  }
  return d;
}

absl::StatusOr<ResultsFile> ReadResultsFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open results file ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return api::ParseResultsFile(ss.str(), path);
}

absl::Status MergeResultFiles(const std::vector<std::string>& inputs, const std::string& out,
                              bool allow_incomplete) {
  std::vector<std::pair<std::string, std::string>> files;
  for (const std::string& p : inputs) {
    std::ifstream in(p, std::ios::binary);
    if (!in) return absl::NotFoundError(absl::StrCat("cannot open results file ", p));
    std::stringstream ss;
    ss << in.rdbuf();
    files.emplace_back(p, ss.str());
  }
  LASERD_ASSIGN_OR_RETURN(const std::string merged, api::MergeResults(files, allow_incomplete));
  const std::string tmp = out + ".tmp";
  {
    std::ofstream o(tmp, std::ios::binary | std::ios::trunc);
    if (!o) return absl::NotFoundError(absl::StrCat("cannot write ", tmp));
    o << merged;
    o.flush();
    if (!o) return absl::DataLossError(absl::StrCat("error writing ", tmp));
  }
  if (std::rename(tmp.c_str(), out.c_str()) != 0) {
    return absl::DataLossError(absl::StrCat("cannot rename ", tmp, " to ", out));
  }
  return absl::OkStatus();
}

}  // namespace laserd::server
