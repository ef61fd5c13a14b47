#include "server/service.h"

#include <openssl/evp.h>
#include <openssl/sha.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <variant>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "engine/eval/dataset.h"
#include "engine/laser/intervention.h"
#include "engine/laser/rank.h"
#include "engine/laser/replicas.h"
#include "engine/laser/spectrum.h"
#include "engine/laser/sweep.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "google/protobuf/util/time_util.h"
#include "kernels/svd.h"
#include "nlohmann/json.hpp"
#include "server/grpc_status.h"
#include "server/sweep_io.h"
#include "spdlog/spdlog.h"

namespace laserd::server {

namespace pb = ::laser::v1;
using google::protobuf::util::TimeUtil;
using Clock = std::chrono::steady_clock;

namespace {

// TimeUtil::GetCurrentTime() has whole seconds in this protobuf; the system
// clock with nanoseconds orders events within a second.
google::protobuf::Timestamp Now() {
  return TimeUtil::NanosecondsToTimestamp(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                              std::chrono::system_clock::now().time_since_epoch())
                                              .count());
}

bool Terminal(pb::JobState s) {
  return s == pb::JOB_STATE_SUCCEEDED || s == pb::JOB_STATE_FAILED || s == pb::JOB_STATE_CANCELLED;
}

std::string StateName(pb::JobState s) {
  std::string n = pb::JobState_Name(s);
  return absl::AsciiStrToLower(absl::StripPrefix(n, "JOB_STATE_"));
}

std::string RandomId() {
  static std::mutex mu;
  static std::mt19937_64 rng(std::random_device{}());
  std::lock_guard<std::mutex> lock(mu);
  return absl::StrCat("job-", absl::Hex(rng(), absl::kZeroPad16));
}

// Page tokens are the decimal offset of the page's first item.
absl::StatusOr<int64_t> PageOffset(const std::string& token) {
  if (token.empty()) return 0;
  int64_t off = 0;
  if (!absl::SimpleAtoi(token, &off) || off < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_token: '", token, "' is not a token this server issued"));
  }
  return off;
}

absl::StatusOr<int64_t> PageSize(int32_t requested, int64_t dflt, int64_t max) {
  if (requested < 0) {
    return absl::InvalidArgumentError(absl::StrCat("page_size: ", requested, " is negative"));
  }
  if (requested == 0) return dflt;
  return std::min<int64_t>(requested, max);
}

bool ValidLabelKey(const std::string& k) {
  if (k.empty() || k.size() > 63) return false;
  for (char c : k) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-')) {
      return false;
    }
  }
  return true;
}

std::string FileSha256(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  std::vector<char> buf(1 << 20);
  while (f) {
    f.read(buf.data(), buf.size());
    EVP_DigestUpdate(ctx, buf.data(), f.gcount());
  }
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx, d, &len);
  EVP_MD_CTX_free(ctx);
  std::string hex;
  for (unsigned int i = 0; i < len; ++i) absl::StrAppend(&hex, absl::Hex(d[i], absl::kZeroPad2));
  return hex;
}

google::protobuf::Duration Seconds(double s) {
  return TimeUtil::NanosecondsToDuration(static_cast<int64_t>(s * 1e9));
}

// Canonical type → the aliases of the paper's code.
const std::map<std::string, std::string>& AliasOf() {
  static const auto* m = new std::map<std::string, std::string>{
      {"attn.q", "q_proj"}, {"attn.k", "k_proj"}, {"attn.v", "v_proj"}, {"attn.o", "out_proj"},
      {"mlp.in", "fc_in"},  {"mlp.up", "fc_up"},  {"mlp.out", "fc_out"}};
  return *m;
}

// Where a canonical matrix of layer 0 lives in the model file: candidate
// tensor-name suffixes (llama-family GGUF and HF, GPT-J, GPT-2, GPT-NeoX) and,
// for fused q/k/v tensors, which part of the tensor the matrix is.
struct SourceTensor {
  std::string name, dtype, fused_block;
};
SourceTensor FindSourceTensor(const formats::WeightSource& w, const std::string& type,
                              const model::ModelConfig& c) {
  static const std::map<std::string, std::vector<std::string>> kNames = {
      {"attn.q",
       {"blk.0.attn_q.weight", "layers.0.self_attn.q_proj.weight", "h.0.attn.q_proj.weight"}},
      {"attn.k",
       {"blk.0.attn_k.weight", "layers.0.self_attn.k_proj.weight", "h.0.attn.k_proj.weight"}},
      {"attn.v",
       {"blk.0.attn_v.weight", "layers.0.self_attn.v_proj.weight", "h.0.attn.v_proj.weight"}},
      {"attn.o",
       {"blk.0.attn_output.weight", "layers.0.self_attn.o_proj.weight", "h.0.attn.out_proj.weight",
        "h.0.attn.c_proj.weight", "layers.0.attention.dense.weight"}},
      {"mlp.in",
       {"blk.0.ffn_gate.weight", "layers.0.mlp.gate_proj.weight", "h.0.mlp.fc_in.weight",
        "h.0.mlp.c_fc.weight", "layers.0.mlp.dense_h_to_4h.weight"}},
      {"mlp.up", {"blk.0.ffn_up.weight", "layers.0.mlp.up_proj.weight"}},
      {"mlp.out",
       {"blk.0.ffn_down.weight", "layers.0.mlp.down_proj.weight", "h.0.mlp.fc_out.weight",
        "h.0.mlp.c_proj.weight", "layers.0.mlp.dense_4h_to_h.weight"}}};
  auto find = [&](const std::string& suffix) -> const formats::TensorInfo* {
    for (const auto& t : w.tensors()) {
      if (t.name == suffix || absl::EndsWith(t.name, "." + suffix)) return &t;
    }
    return nullptr;
  };
  SourceTensor out;
  if (auto it = kNames.find(type); it != kNames.end()) {
    for (const std::string& n : it->second) {
      if (const auto* t = find(n)) {
        out.name = t->name;
        out.dtype = formats::DTypeName(t->dtype);
        return out;
      }
    }
  }
  const int j = type == "attn.q" ? 0 : type == "attn.k" ? 1 : type == "attn.v" ? 2 : -1;
  if (j < 0) return out;
  const int64_t d = c.hidden, hd = c.head_dim;
  if (const auto* t = find("h.0.attn.c_attn.weight")) {  // GPT-2 Conv1D [d, 3d]
    out = {t->name, formats::DTypeName(t->dtype),
           absl::StrCat("rows ", j * d, ":", (j + 1) * d, " (of the transposed [3d, d] weight)")};
  } else if (const auto* t2 = find("layers.0.attention.query_key_value.weight")) {
    out = {t2->name, formats::DTypeName(t2->dtype),
           absl::StrCat("rows h*", 3 * hd, "+", j * hd, ":h*", 3 * hd, "+", (j + 1) * hd,
                        " of every head h")};
  }
  return out;
}

}  // namespace

std::string Sha256Hex(const std::string& bytes) {
  unsigned char d[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), d);
  std::string hex;
  for (unsigned char c : d) absl::StrAppend(&hex, absl::Hex(c, absl::kZeroPad2));
  return hex;
}

absl::StatusOr<std::map<std::string, TokenInfo>> ReadTokens(const std::string& path) {
  std::ifstream f(path);
  if (!f) return absl::NotFoundError(absl::StrCat("--tokens: cannot read ", path));
  std::map<std::string, TokenInfo> out;
  std::string line;
  int n = 0;
  while (std::getline(f, line)) {
    ++n;
    absl::string_view s = absl::StripAsciiWhitespace(line);
    if (s.empty() || s[0] == '#') continue;
    std::vector<std::string> parts = absl::StrSplit(s, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (parts.size() < 2 || (parts[1] != "read" && parts[1] != "write")) {
      // The line is not echoed: it holds a secret.
      return absl::InvalidArgumentError(
          absl::StrCat("--tokens: ", path, " line ", n, ": expected '<token> read|write [name]'"));
    }
    TokenInfo t;
    t.write = parts[1] == "write";
    t.name = parts.size() > 2 ? parts[2] : absl::StrCat("line", n);
    out[parts[0]] = t;
  }
  if (out.empty())
    return absl::InvalidArgumentError(absl::StrCat("--tokens: ", path, " has no tokens"));
  return out;
}

// ---------------------------------------------------------------------------
// Core
// ---------------------------------------------------------------------------

Core::Core(ServeOptions opts, std::unique_ptr<JobStore> store,
           std::map<std::string, TokenInfo> tokens)
    : opts_(std::move(opts)), store_(std::move(store)), tokens_(std::move(tokens)) {}

Core::~Core() { Stop(); }

absl::Status Core::Authorize(const grpc::CallbackServerContext* ctx, bool write) const {
  if (tokens_.empty()) return absl::OkStatus();
  const auto& md = ctx->client_metadata();
  auto it = md.find("authorization");
  if (it == md.end()) return AuthorizeBearer(nullptr, write);
  const std::string value(it->second.data(), it->second.size());
  return AuthorizeBearer(&value, write);
}

absl::Status Core::AuthorizeBearer(const std::string* authorization, bool write,
                                   absl::string_view carrier) const {
  if (tokens_.empty()) return absl::OkStatus();
  if (authorization == nullptr) {
    return absl::UnauthenticatedError(
        absl::StrCat("missing 'authorization: Bearer <token>' ", carrier));
  }
  absl::string_view v(*authorization);
  if (!absl::ConsumePrefix(&v, "Bearer ")) {
    return absl::UnauthenticatedError(
        absl::StrCat("authorization ", carrier, " is not 'Bearer <token>'"));
  }
  auto t = tokens_.find(std::string(absl::StripAsciiWhitespace(v)));
  if (t == tokens_.end()) return absl::UnauthenticatedError("unknown bearer token");
  if (write && !t->second.write) {
    return absl::PermissionDeniedError(
        absl::StrCat("token '", t->second.name, "' has read scope; this call needs write"));
  }
  return absl::OkStatus();
}

absl::Status Core::ModelReady() const {
  if (!resident_)
    return absl::UnavailableError("the model is loading; retry when health is SERVING");
  return absl::OkStatus();
}

absl::Status Core::LoadModel() {
  const auto t0 = Clock::now();
  const std::vector<std::string> devices =
      opts_.devices.empty() ? std::vector<std::string>{opts_.device} : opts_.devices;
  if (devices.size() == 1) {
    auto lm = eval::LoadModel(opts_.model, devices[0], opts_.tokenizer);
    if (!lm.ok()) return lm.status();
    lm_ = *std::move(lm);
  } else {
    auto loaded = laser::LoadReplicas(opts_.model, devices, opts_.tokenizer);
    if (!loaded.ok()) return loaded.status();
    lm_ = std::move((*loaded)[0]);
    for (size_t i = 1; i < loaded->size(); ++i) replicas_.push_back(std::move((*loaded)[i]));
  }
  device_names_.push_back(laser::ReplicaDeviceName(devices[0], lm_));
  for (size_t i = 1; i < devices.size(); ++i) {
    device_names_.push_back(laser::ReplicaDeviceName(devices[i], replicas_[i - 1]));
  }
  const model::ModelConfig& c = lm_.model->config();
  pb::ModelInfo& mi = model_info_;
  namespace fs = std::filesystem;
  const fs::path p(opts_.model);
  mi.set_path(opts_.model);
  const bool gguf = lm_.weights->format() == formats::FileFormat::kGguf;
  mi.set_format(gguf ? "gguf" : "safetensors");
  const nlohmann::json& meta = lm_.weights->metadata();
  std::string name = fs::is_directory(p) ? p.filename().string() : p.stem().string();
  if (gguf && meta.contains("general.name") && meta["general.name"].is_string()) {
    name = meta["general.name"].get<std::string>();
  }
  mi.set_name(name);
  if (fs::is_directory(p)) {
    // index.json then the shards in index order (file name order), or model.safetensors.
    std::string cat;
    std::vector<std::string> files;
    for (const auto& e : fs::directory_iterator(p)) {
      const std::string n = e.path().filename().string();
      if (n == "model.safetensors.index.json" || e.path().extension() == ".safetensors") {
        files.push_back(n);
      }
    }
    std::sort(files.begin(), files.end(), [](const std::string& a, const std::string& b) {
      const bool ai = absl::EndsWith(a, ".json"), bi = absl::EndsWith(b, ".json");
      return ai != bi ? ai : a < b;
    });
    for (const std::string& n : files) {
      std::ifstream f(p / n, std::ios::binary);
      cat.append(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
    }
    mi.set_sha256(Sha256Hex(cat));
  } else {
    mi.set_sha256(FileSha256(opts_.model));
  }
  mi.set_architecture(model::ArchName(c.arch));
  mi.set_num_layers(static_cast<int32_t>(c.layers));
  mi.set_hidden_size(c.hidden);
  mi.set_intermediate_size(c.intermediate);
  mi.set_num_attention_heads(static_cast<int32_t>(c.heads));
  mi.set_num_key_value_heads(static_cast<int32_t>(c.kv_heads));
  mi.set_vocab_size(c.vocab_size);
  mi.set_context_length(c.max_positions);
  mi.set_tied_embeddings(c.tied_embeddings);
  mi.set_parameter_count(lm_.model->ParameterCount());
  std::set<std::string> dtypes;
  for (const auto& t : lm_.weights->tensors()) dtypes.insert(formats::DTypeName(t.dtype));
  for (const auto& d : dtypes) mi.add_source_dtypes(d);
  mi.set_compute_dtype("F32");
  const bool cuda = lm_.backend->kind() == kernels::DeviceKind::kCuda;
  mi.set_device(cuda ? pb::DEVICE_CUDA : pb::DEVICE_CPU);
  mi.set_device_name(lm_.backend->name());
  for (const std::string& d : device_names_) mi.add_devices(d);
  for (const std::string& type : lm_.model->MatrixTypes()) {
    auto w = lm_.model->Matrix(type, 0);
    if (!w.ok()) return w.status();
    pb::MatrixTypeInfo* t = mi.add_matrix_types();
    t->set_matrix_type(type);
    t->add_aliases(AliasOf().at(type));
    t->set_rows((*w)->rows());
    t->set_cols((*w)->cols());
    t->set_max_rank(std::min((*w)->rows(), (*w)->cols()));
    for (int32_t l = 0; l < c.layers; ++l) t->add_layers(l);
    const SourceTensor src = FindSourceTensor(*lm_.weights, type, c);
    t->set_source_tensor(src.name);
    t->set_source_dtype(src.dtype);
    t->set_fused_block(src.fused_block);
  }
  pb::TokenizerInfo* ti = mi.mutable_tokenizer();
  std::string tok_model =
      gguf && meta.contains("tokenizer.ggml.model") && meta["tokenizer.ggml.model"].is_string()
          ? meta["tokenizer.ggml.model"].get<std::string>()
          : "gpt2";
  ti->set_kind(tok_model == "llama" ? "sentencepiece_bpe" : "byte_level_bpe");
  if (gguf && meta.contains("tokenizer.ggml.pre") && meta["tokenizer.ggml.pre"].is_string()) {
    ti->set_pre_tokenizer(meta["tokenizer.ggml.pre"].get<std::string>());
  }
  ti->set_add_bos(lm_.tokenizer->adds_bos());
  ti->set_bos_token_id(lm_.tokenizer->bos_id().value_or(-1));
  ti->set_eos_token_id(lm_.tokenizer->eos_id().value_or(-1));
  *mi.mutable_load_time() = Now();
  // Every replica holds its own copy of the weights.
  mi.mutable_memory()->set_weights_bytes(lm_.model->ParameterCount() * 4 *
                                         static_cast<int64_t>(device_names_.size()));
  mi.mutable_memory()->set_cache_budget_bytes(opts_.cache_budget_mb << 20);
  resident_ = true;
  spdlog::info("model resident: {} ({}, {} layers, {} parameters) on {} in {:.2f} s", name,
               mi.architecture(), c.layers, mi.parameter_count(),
               absl::StrJoin(device_names_, ", "),
               std::chrono::duration<double>(Clock::now() - t0).count());
  return absl::OkStatus();
}

absl::Status Core::Start() {
  auto jobs = store_->ListJobs();
  if (!jobs.ok()) return jobs.status();
  int requeued = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (StoredJob& sj : *jobs) {
      pb::Job& j = sj.job;
      if (j.state() == pb::JOB_STATE_RUNNING) {
        // Stopped by a crash or shutdown: run again; stored results are skipped.
        j.set_state(pb::JOB_STATE_QUEUED);
        j.mutable_progress()->set_phase(pb::JOB_PHASE_UNSPECIFIED);
        *j.mutable_update_time() = Now();
        if (auto st = store_->UpdateJob(j); !st.ok()) return st;
        ++requeued;
      }
      if (j.state() == pb::JOB_STATE_QUEUED) {
        queue_.push_back({j.id(), j.spec().priority(), sj.seq});
      }
    }
  }
  if (requeued) spdlog::info("requeued {} interrupted job(s)", requeued);
  worker_ = std::thread([this] { WorkerLoop(); });
  return absl::OkStatus();
}

void Core::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_) return;
    stop_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
}

void Core::WorkerLoop() {
  while (true) {
    std::string id;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || (!queue_.empty() && resident_); });
      if (stop_) return;
      auto best =
          std::min_element(queue_.begin(), queue_.end(), [](const Queued& a, const Queued& b) {
            return a.priority != b.priority ? a.priority > b.priority : a.seq < b.seq;
          });
      id = best->id;
      queue_.erase(best);
      auto sj = store_->GetJob(id);
      if (!sj.ok()) continue;  // deleted meanwhile
      running_id_ = id;
      running_ = sj->job;
      cancel_ = false;
      running_deleted_ = false;
    }
    RunJob(id);
  }
}

absl::Status Core::SaveRunningLocked() {
  *running_.mutable_update_time() = Now();
  return store_->UpdateJob(running_);
}

void Core::PublishLocked(const std::string& job_id, const pb::WatchJobEvent& ev, bool terminal) {
  auto it = watchers_.find(job_id);
  if (it == watchers_.end()) return;
  for (WatchReactor* w : it->second) w->Push(ev, terminal);
}

absl::StatusOr<laser::SweepConfig> Core::ConfigFor(const pb::SweepSpec& spec) {
  pb::SweepSpec s = spec;
  if (s.dataset().has_dataset_id()) s.mutable_dataset()->set_path("<uploaded dataset>");
  auto hs = SweepConfigFromSpec(s);
  if (!hs.ok()) {
    const absl::Status& e = hs.status();
    return absl::Status(e.code(), absl::StartsWith(e.message(), "spec.")
                                      ? std::string(e.message())
                                      : absl::StrCat("spec.", e.message()));
  }
  laser::SweepConfig cfg = hs->config;
  cfg.cache_budget_bytes = opts_.cache_budget_mb << 20;
  return cfg;
}

absl::StatusOr<eval::Dataset> Core::ResolveDataset(const pb::SweepSpec& spec, std::string* source) {
  std::string bytes;
  if (spec.dataset().has_dataset_id()) {
    auto b = store_->DatasetBytes(spec.dataset().dataset_id());
    if (!b.ok()) {
      return absl::NotFoundError(absl::StrCat("spec.dataset.dataset_id: no dataset '",
                                              spec.dataset().dataset_id(), "' was uploaded"));
    }
    bytes = *std::move(b);
    *source = absl::StrCat("dataset ", spec.dataset().dataset_id());
  } else {
    namespace fs = std::filesystem;
    std::error_code ec;
    const fs::path p = fs::weakly_canonical(spec.dataset().path(), ec);
    bool allowed = false;
    for (const std::string& d : opts_.data_dirs) {
      const fs::path dir = fs::weakly_canonical(d, ec);
      auto rel = p.lexically_relative(dir);
      if (!rel.empty() && *rel.begin() != "..") allowed = true;
    }
    if (!allowed) {
      return absl::PermissionDeniedError(
          absl::StrCat("spec.dataset.path: '", spec.dataset().path(),
                       "' is not under a --data-dir of this server; upload it with UploadDataset"));
    }
    std::ifstream f(p, std::ios::binary);
    if (!f) {
      return absl::NotFoundError(
          absl::StrCat("spec.dataset.path: cannot read '", spec.dataset().path(), "'"));
    }
    bytes.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
    *source = spec.dataset().path();
  }
  auto ds = eval::ParseDataset(bytes, *source);
  if (!ds.ok()) {
    return absl::Status(ds.status().code(), absl::StrCat("spec.dataset: ", ds.status().message()));
  }
  return ds;
}

absl::StatusOr<pb::Job> Core::CreateSweep(const pb::CreateSweepRequest& req) {
  if (auto st = ModelReady(); !st.ok()) return st;
  const std::string& rid = req.request_id();
  if (rid.size() > 128) {
    return absl::InvalidArgumentError(
        absl::StrCat("request_id: ", rid.size(), " characters; at most 128"));
  }
  for (char c : rid) {
    if (c < 0x20 || c > 0x7e) {
      return absl::InvalidArgumentError("request_id: only printable ASCII characters are allowed");
    }
  }
  const pb::SweepSpec& spec = req.spec();
  if (!req.has_spec()) return absl::InvalidArgumentError("spec: required");
  for (const auto& [k, v] : spec.labels()) {
    if (!ValidLabelKey(k)) {
      return absl::InvalidArgumentError(
          absl::StrCat("spec.labels: key '", k, "' is not 1-63 characters of [a-z0-9_.-]"));
    }
    if (v.size() > 255) {
      return absl::InvalidArgumentError(
          absl::StrCat("spec.labels[", k, "]: value of ", v.size(), " characters; at most 255"));
    }
  }
  if (!rid.empty() && !req.validate_only()) {
    if (auto prev = store_->FindByRequestId(rid)) {
      if (google::protobuf::util::MessageDifferencer::Equals(prev->job.spec(), spec)) {
        return prev->job;
      }
      return absl::AlreadyExistsError(absl::StrCat("request_id: '", rid, "' created job ",
                                                   prev->job.id(), " with a different spec"));
    }
  }
  if (!spec.model().empty() && spec.model() != model_info_.name() &&
      spec.model() != model_info_.sha256()) {
    return absl::FailedPreconditionError(
        absl::StrCat("spec.model: '", spec.model(), "' is not the served model ('",
                     model_info_.name(), "', sha256 ", model_info_.sha256(), ")"));
  }
  auto cfg = ConfigFor(spec);
  if (!cfg.ok()) return cfg.status();
  std::string source;
  auto ds = ResolveDataset(spec, &source);
  if (!ds.ok()) return ds.status();
  // Full validation against the model and the dataset (types, layers, ranks,
  // record kinds, context length): the same runner the job will build.
  auto runner = laser::SweepRunner::Create(lm_.model.get(), *lm_.tokenizer, *ds, *cfg);
  if (!runner.ok()) {
    const absl::Status s = SpecError(runner.status());
    if (absl::StartsWith(s.message(), "spec.")) return s;
    return absl::Status(s.code(), absl::StrCat("spec: ", s.message()));
  }
  const int64_t total = (*runner)->shard_interventions();
  pb::Job job;
  job.set_request_id(rid);
  *job.mutable_spec() = spec;
  job.mutable_progress()->set_interventions_total(total);
  job.set_validation_examples(static_cast<int64_t>((*runner)->split().validation.size()));
  job.set_test_examples(static_cast<int64_t>((*runner)->split().test.size()));
  runner->reset();
  if (total > opts_.max_grid) {
    return absl::ResourceExhaustedError(absl::StrCat("spec: the sweep has ", total,
                                                     " interventions; this server's --max-grid is ",
                                                     opts_.max_grid));
  }
  if (req.validate_only()) return job;
  std::lock_guard<std::mutex> lock(mu_);
  if (static_cast<int64_t>(queue_.size()) >= opts_.max_queued) {
    return absl::ResourceExhaustedError(
        absl::StrCat("the queue is full (", queue_.size(), " jobs; --max-queued)"));
  }
  job.set_id(RandomId());
  job.set_state(pb::JOB_STATE_QUEUED);
  *job.mutable_create_time() = Now();
  *job.mutable_update_time() = job.create_time();
  auto seq = store_->InsertJob(job);
  if (!seq.ok()) {
    if (seq.status().code() == absl::StatusCode::kAlreadyExists && !rid.empty()) {
      if (auto prev = store_->FindByRequestId(rid)) {  // a concurrent retry won
        if (google::protobuf::util::MessageDifferencer::Equals(prev->job.spec(), spec)) {
          return prev->job;
        }
        return absl::AlreadyExistsError(absl::StrCat("request_id: '", rid, "' created job ",
                                                     prev->job.id(), " with a different spec"));
      }
    }
    return seq.status();
  }
  queue_.push_back({job.id(), spec.priority(), *seq});
  cv_.notify_all();
  spdlog::info("job {} created: {} interventions, priority {}", job.id(), total, spec.priority());
  return job;
}

void Core::RunJob(const std::string& id) {
  pb::SweepSpec spec;
  int64_t elapsed_base_ns = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const pb::JobState prev = running_.state();
    running_.set_state(pb::JOB_STATE_RUNNING);
    if (!running_.has_start_time()) *running_.mutable_start_time() = Now();
    running_.mutable_progress()->set_phase(pb::JOB_PHASE_PREPARING);
    SaveRunningLocked().IgnoreError();
    pb::WatchJobEvent ev;
    *ev.mutable_time() = Now();
    ev.mutable_state_change()->set_previous(prev);
    ev.mutable_state_change()->set_current(pb::JOB_STATE_RUNNING);
    PublishLocked(id, ev, false);
    spec = running_.spec();
    elapsed_base_ns = TimeUtil::DurationToNanoseconds(running_.progress().elapsed());
  }
  spdlog::info("job {} running", id);
  const auto t_run = Clock::now();
  auto progress_event = [&](bool force) {
    static thread_local Clock::time_point last;
    if (!force && Clock::now() - last < std::chrono::milliseconds(200)) return;
    last = Clock::now();
    pb::WatchJobEvent ev;
    *ev.mutable_time() = Now();
    *ev.mutable_progress() = running_.progress();
    PublishLocked(id, ev, false);
  };
  auto set_phase = [&](pb::JobPhase ph) {
    std::lock_guard<std::mutex> lock(mu_);
    running_.mutable_progress()->set_phase(ph);
    SaveRunningLocked().IgnoreError();
    progress_event(true);
  };
  auto cancelled = [&]() -> absl::Status {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_) return absl::AbortedError("server stopping");
    if (cancel_) return absl::CancelledError("job cancelled");
    return absl::OkStatus();
  };

  absl::Status st = [&]() -> absl::Status {
    auto cfg = ConfigFor(spec);
    if (!cfg.ok()) return cfg.status();
    std::string source;
    auto ds = ResolveDataset(spec, &source);
    if (!ds.ok()) return ds.status();
    std::unique_lock<std::mutex> ml(model_mu_);
    std::vector<model::Model*> models = {lm_.model.get()};
    for (const eval::LoadedModel& r : replicas_) models.push_back(r.model.get());
    auto runner = laser::SweepRunner::Create(models, *lm_.tokenizer, *ds, *cfg);
    if (!runner.ok()) return SpecError(runner.status());
    laser::SweepRunner& R = **runner;
    auto stored = store_->Results(id);
    if (!stored.ok()) return stored.status();
    std::set<int64_t> skip;
    std::vector<laser::SingleSummary> singles;
    int64_t composition_steps = 0;
    for (const pb::Result& r : *stored) {
      skip.insert(r.plan_index());
      if (r.kind() == pb::RESULT_KIND_SINGLE) {
        singles.push_back({InterventionFromProto(r.intervention(), r.plan_index()),
                           r.metrics().validation().accuracy(),
                           r.metrics().validation().log_loss()});
      } else {
        ++composition_steps;
      }
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      running_.mutable_progress()->set_interventions_total(R.shard_interventions() +
                                                           composition_steps);
      running_.set_validation_examples(static_cast<int64_t>(R.split().validation.size()));
      running_.set_test_examples(static_cast<int64_t>(R.split().test.size()));
      SaveRunningLocked().IgnoreError();
    }
    if (auto c = cancelled(); !c.ok()) return c;
    bool have_baseline;
    {
      std::lock_guard<std::mutex> lock(mu_);
      have_baseline = running_.has_baseline();
    }
    if (!have_baseline) {
      set_phase(pb::JOB_PHASE_BASELINE);
      auto base = R.Baseline();
      if (!base.ok()) return base.status();
      std::lock_guard<std::mutex> lock(mu_);
      *running_.mutable_baseline() = EvaluationProto(*base);
      if (auto s = SaveRunningLocked(); !s.ok()) return s;
      pb::WatchJobEvent ev;
      *ev.mutable_time() = Now();
      *ev.mutable_baseline() = running_.baseline();
      PublishLocked(id, ev, false);
    }
    pb::Evaluation baseline;
    {
      std::lock_guard<std::mutex> lock(mu_);
      baseline = running_.baseline();
    }
    if (auto c = cancelled(); !c.ok()) return c;
    const int64_t done_at_start = static_cast<int64_t>(stored->size());
    const auto t_sweep = Clock::now();
    // Commits one result, then streams it.
    auto commit = [&](pb::ResultKind kind, const laser::Intervention& iv,
                      const laser::SplitMetrics& m, int64_t plan_index, double svd_s, double eval_s,
                      const std::vector<laser::Intervention>* stacked, bool kept) -> absl::Status {
      pb::Result r;
      r.set_job_id(id);
      r.set_plan_index(plan_index);
      r.set_kind(kind);
      *r.mutable_intervention() = InterventionProto(iv);
      if (stacked) {
        for (const laser::Intervention& s : *stacked) *r.add_stacked_on() = InterventionProto(s);
      }
      *r.mutable_metrics() = EvaluationProto(m);
      *r.mutable_validation_delta() = Deltas(r.metrics().validation(), baseline.validation());
      *r.mutable_test_delta() = Deltas(r.metrics().test(), baseline.test());
      r.set_kept(kept);
      r.set_shard_index(static_cast<uint32_t>(cfg->shard_count > 1 ? cfg->shard_index : 0));
      *r.mutable_svd_duration() = Seconds(svd_s);
      *r.mutable_eval_duration() = Seconds(eval_s);
      *r.mutable_create_time() = Now();
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (running_deleted_) return absl::CancelledError("job deleted");
        r.set_index(running_.result_count());
        pb::Job next = running_;
        next.set_result_count(r.index() + 1);
        pb::Progress* p = next.mutable_progress();
        if (kind == pb::RESULT_KIND_COMPOSITION) {
          p->set_interventions_total(std::max(p->interventions_total(), r.index() + 1));
        }
        p->set_interventions_done(r.index() + 1);
        p->set_fraction(p->interventions_total() > 0
                            ? std::min(1.0, static_cast<double>(p->interventions_done()) /
                                                p->interventions_total())
                            : 1.0);
        const double el = std::chrono::duration<double>(Clock::now() - t_run).count();
        *p->mutable_elapsed() =
            TimeUtil::NanosecondsToDuration(elapsed_base_ns + static_cast<int64_t>(el * 1e9));
        const double sweep_el = std::chrono::duration<double>(Clock::now() - t_sweep).count();
        const double ips = sweep_el > 0 ? (r.index() + 1 - done_at_start) / sweep_el : 0;
        p->set_interventions_per_second(ips);
        ips_ = ips;
        if (ips > 0) {
          *p->mutable_eta() = Seconds((p->interventions_total() - p->interventions_done()) / ips);
        }
        if (kind == pb::RESULT_KIND_SINGLE) {
          const auto& v = r.metrics().validation();
          if (!p->has_best() ||
              laser::BetterOnValidation(v.accuracy(), v.log_loss(),
                                        p->best().metrics().validation().accuracy(),
                                        p->best().metrics().validation().log_loss())) {
            *p->mutable_best() = r;
          }
        } else if (kept) {
          *next.mutable_best_composition() = r;
        }
        *next.mutable_update_time() = Now();
        if (auto s = store_->AppendResult(r, next); !s.ok()) return s;
        running_ = std::move(next);
        pb::WatchJobEvent ev;
        *ev.mutable_time() = Now();
        *ev.mutable_result() = r;
        PublishLocked(id, ev, false);
        progress_event(false);
      }
      metrics_.AddIntervention();
      // Let a waiting GetSpectrum read the (unedited) model between interventions
      // (with several replicas the edit hook below does it instead).
      if (R.replica_count() == 1 && spectrum_waiting_.load() > 0) {
        ml.unlock();
        while (spectrum_waiting_.load() > 0)
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
        ml.lock();
      }
      return cancelled();
    };
    set_phase(pb::JOB_PHASE_SWEEPING);
    if (R.replica_count() > 1) {
      // Results are committed on this thread while the replicas keep working:
      // the first replica's worker holds model_mu_ only while its model is
      // edited, so a spectrum request reads it unedited between two of its
      // interventions.
      ml.unlock();
      R.set_edit_hook([this](size_t replica, bool editing) {
        if (replica != 0) return;
        if (editing) {
          while (spectrum_waiting_.load() > 0)
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
          model_mu_.lock();
        } else {
          model_mu_.unlock();
        }
      });
    }
    auto rs = R.Run(skip, [&](const laser::SweepResult& res) -> absl::Status {
      auto s =
          commit(pb::RESULT_KIND_SINGLE, res.intervention, res.metrics, res.intervention.plan_index,
                 res.svd_seconds, res.eval_seconds, nullptr, false);
      singles.push_back(
          {res.intervention, res.metrics.validation.accuracy, res.metrics.validation.log_loss});
      return s;
    });
    if (R.replica_count() > 1) {
      R.set_edit_hook(nullptr);
      ml.lock();
    }
    if (!rs.ok()) return rs;
    if (cfg->compose) {
      set_phase(pb::JOB_PHASE_COMPOSING);
      laser::SplitMetrics base_m;
      base_m.validation.accuracy = baseline.validation().accuracy();
      base_m.validation.log_loss = baseline.validation().log_loss();
      rs = R.Compose(singles, base_m, skip, [&](const laser::CompositionStep& cs) -> absl::Status {
        return commit(pb::RESULT_KIND_COMPOSITION, cs.added, cs.metrics, cs.plan_index, 0, 0,
                      &cs.stacked_on, cs.kept);
      });
      if (!rs.ok()) return rs;
    }
    return absl::OkStatus();
  }();
  FinishRunning(st);
}

void Core::FinishRunning(const absl::Status& st) {
  std::lock_guard<std::mutex> lock(mu_);
  const std::string id = running_id_;
  running_id_.clear();
  if (stop_ && !st.ok()) {
    spdlog::info("job {} interrupted by shutdown; it resumes at the next start", id);
    return;  // stays RUNNING in the store: requeued at the next start
  }
  pb::WatchJobEvent ev;
  *ev.mutable_time() = Now();
  ev.mutable_state_change()->set_previous(pb::JOB_STATE_RUNNING);
  if (running_deleted_) {
    ev.mutable_state_change()->set_current(pb::JOB_STATE_CANCELLED);
    PublishLocked(id, ev, true);
    return;
  }
  pb::JobState final_state;
  if (st.ok()) {
    final_state = pb::JOB_STATE_SUCCEEDED;
  } else if (cancel_) {
    final_state = pb::JOB_STATE_CANCELLED;
  } else {
    final_state = pb::JOB_STATE_FAILED;
    running_.mutable_error()->set_code(static_cast<int32_t>(st.code()));
    running_.mutable_error()->set_message(std::string(st.message()));
    *ev.mutable_state_change()->mutable_error() = running_.error();
  }
  running_.set_state(final_state);
  running_.mutable_progress()->set_phase(pb::JOB_PHASE_UNSPECIFIED);
  running_.mutable_progress()->clear_eta();
  *running_.mutable_end_time() = Now();
  if (auto s = SaveRunningLocked(); !s.ok()) spdlog::error("job {}: {}", id, s.ToString());
  {  // The final progress (done, best) before the terminal state change.
    pb::WatchJobEvent pe;
    *pe.mutable_time() = Now();
    *pe.mutable_progress() = running_.progress();
    PublishLocked(id, pe, false);
  }
  ev.mutable_state_change()->set_current(final_state);
  PublishLocked(id, ev, true);
  ips_ = 0;
  spdlog::info("job {} {}: {} results{}", id, StateName(final_state), running_.result_count(),
               st.ok() ? "" : absl::StrCat(" (", st.ToString(), ")"));
}

absl::StatusOr<pb::Job> Core::GetJob(const std::string& id) {
  if (id.empty()) return absl::InvalidArgumentError("job_id: required");
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (id == running_id_) return running_;
  }
  auto j = store_->GetJob(id);
  if (!j.ok()) return j.status();
  return j->job;
}

absl::StatusOr<pb::ListJobsResponse> Core::ListJobs(const pb::ListJobsRequest& req) {
  auto size = PageSize(req.page_size(), 50, 1000);
  if (!size.ok()) return size.status();
  auto off = PageOffset(req.page_token());
  if (!off.ok()) return off.status();
  for (int i = 0; i < req.states_size(); ++i) {
    if (!pb::JobState_IsValid(req.states(i))) {
      return absl::InvalidArgumentError(
          absl::StrCat("states[", i, "]: unknown state ", req.states(i)));
    }
  }
  auto jobs = store_->ListJobs();
  if (!jobs.ok()) return jobs.status();
  std::vector<pb::Job> match;
  for (StoredJob& sj : *jobs) {
    const pb::Job& j = sj.job;
    if (req.states_size() > 0 &&
        std::find(req.states().begin(), req.states().end(), j.state()) == req.states().end()) {
      continue;
    }
    bool ok = true;
    for (const auto& [k, v] : req.labels()) {
      auto it = j.spec().labels().find(k);
      if (it == j.spec().labels().end() || it->second != v) ok = false;
    }
    if (ok) match.push_back(std::move(sj.job));
  }
  pb::ListJobsResponse resp;
  resp.set_total_size(static_cast<int64_t>(match.size()));
  for (int64_t i = *off; i < static_cast<int64_t>(match.size()) && i < *off + *size; ++i) {
    *resp.add_jobs() = match[i];
  }
  if (*off + *size < static_cast<int64_t>(match.size())) {
    resp.set_next_page_token(std::to_string(*off + *size));
  }
  return resp;
}

absl::StatusOr<pb::Job> Core::CancelJob(const std::string& id) {
  if (id.empty()) return absl::InvalidArgumentError("job_id: required");
  std::lock_guard<std::mutex> lock(mu_);
  if (id == running_id_) {
    cancel_ = true;
    running_.set_cancel_requested(true);
    SaveRunningLocked().IgnoreError();
    spdlog::info("job {}: cancel requested", id);
    return running_;
  }
  auto sj = store_->GetJob(id);
  if (!sj.ok()) return sj.status();
  pb::Job j = sj->job;
  switch (j.state()) {
    case pb::JOB_STATE_CANCELLED:
      return j;
    case pb::JOB_STATE_QUEUED: {
      queue_.erase(
          std::remove_if(queue_.begin(), queue_.end(), [&](const Queued& q) { return q.id == id; }),
          queue_.end());
      j.set_state(pb::JOB_STATE_CANCELLED);
      *j.mutable_end_time() = Now();
      *j.mutable_update_time() = j.end_time();
      if (auto s = store_->UpdateJob(j); !s.ok()) return s;
      pb::WatchJobEvent ev;
      *ev.mutable_time() = Now();
      ev.mutable_state_change()->set_previous(pb::JOB_STATE_QUEUED);
      ev.mutable_state_change()->set_current(pb::JOB_STATE_CANCELLED);
      PublishLocked(id, ev, true);
      spdlog::info("job {} cancelled while queued", id);
      return j;
    }
    default:
      return absl::FailedPreconditionError(
          absl::StrCat("job ", id, " is ", StateName(j.state()),
                       "; only a queued or running job can be cancelled"));
  }
}

absl::Status Core::DeleteJob(const pb::DeleteJobRequest& req) {
  const std::string& id = req.job_id();
  if (id.empty()) return absl::InvalidArgumentError("job_id: required");
  std::lock_guard<std::mutex> lock(mu_);
  pb::JobState state;
  if (id == running_id_) {
    state = pb::JOB_STATE_RUNNING;
  } else {
    auto sj = store_->GetJob(id);
    if (!sj.ok()) return sj.status();
    state = sj->job.state();
  }
  if (!Terminal(state) && !req.force()) {
    return absl::FailedPreconditionError(
        absl::StrCat("job ", id, " is ", StateName(state), "; cancel it first or set force"));
  }
  if (auto s = store_->DeleteJob(id); !s.ok()) return s;
  if (id == running_id_) {
    cancel_ = true;
    running_deleted_ = true;
  } else if (state == pb::JOB_STATE_QUEUED) {
    queue_.erase(
        std::remove_if(queue_.begin(), queue_.end(), [&](const Queued& q) { return q.id == id; }),
        queue_.end());
    pb::WatchJobEvent ev;
    *ev.mutable_time() = Now();
    ev.mutable_state_change()->set_previous(state);
    ev.mutable_state_change()->set_current(pb::JOB_STATE_CANCELLED);
    PublishLocked(id, ev, true);
  }
  spdlog::info("job {} deleted", id);
  return absl::OkStatus();
}

namespace {

using SortKey = std::variant<double, std::string>;
using KeyFn = std::function<SortKey(const pb::Result&)>;

absl::StatusOr<KeyFn> ResultField(const std::string& f) {
  if (f == "index") return KeyFn([](const pb::Result& r) { return SortKey(double(r.index())); });
  if (f == "plan_index") {
    return KeyFn([](const pb::Result& r) { return SortKey(double(r.plan_index())); });
  }
  if (f == "matrix_type") {
    return KeyFn([](const pb::Result& r) { return SortKey(r.intervention().matrix_type()); });
  }
  if (f == "layer") {
    return KeyFn([](const pb::Result& r) { return SortKey(double(r.intervention().layer())); });
  }
  if (f == "rho") return KeyFn([](const pb::Result& r) { return SortKey(r.intervention().rho()); });
  if (f == "rank") {
    return KeyFn([](const pb::Result& r) { return SortKey(double(r.intervention().rank())); });
  }
  if (f == "relative_error") {
    return KeyFn([](const pb::Result& r) { return SortKey(r.intervention().relative_error()); });
  }
  std::vector<std::string> parts = absl::StrSplit(f, absl::MaxSplits('.', 1));
  if (parts.size() == 2) {
    const std::string split = parts[0], metric = parts[1];
    const bool delta = split == "validation_delta" || split == "test_delta";
    if (split == "validation" || split == "test" || delta) {
      const bool val = absl::StartsWith(split, "validation");
      int k = 0;
      absl::string_view m = metric;
      const bool topk = absl::ConsumePrefix(&m, "top_k_accuracy.") && absl::SimpleAtoi(m, &k);
      if (metric == "accuracy" || metric == "log_loss" || topk ||
          (!delta && (metric == "examples" || metric == "correct"))) {
        return KeyFn([=](const pb::Result& r) -> SortKey {
          if (delta) {
            const pb::MetricDeltas& d = val ? r.validation_delta() : r.test_delta();
            if (metric == "accuracy") return d.accuracy();
            if (metric == "log_loss") return d.log_loss();
            auto it = d.top_k_accuracy().find(k);
            return it == d.top_k_accuracy().end() ? 0.0 : it->second;
          }
          const pb::Metrics& mm = val ? r.metrics().validation() : r.metrics().test();
          if (metric == "accuracy") return mm.accuracy();
          if (metric == "log_loss") return mm.log_loss();
          if (metric == "examples") return double(mm.examples());
          if (metric == "correct") return double(mm.correct());
          auto it = mm.top_k_accuracy().find(k);
          return it == mm.top_k_accuracy().end() ? 0.0 : it->second;
        });
      }
    }
  }
  return absl::InvalidArgumentError(absl::StrCat("order_by: unknown field '", f, "'"));
}

}  // namespace

absl::StatusOr<pb::ListResultsResponse> Core::ListResults(const pb::ListResultsRequest& req) {
  auto size = PageSize(req.page_size(), 100, 10000);
  if (!size.ok()) return size.status();
  auto off = PageOffset(req.page_token());
  if (!off.ok()) return off.status();
  std::vector<std::pair<KeyFn, bool>> order;  // key, descending
  for (absl::string_view item : absl::StrSplit(req.order_by(), ',', absl::SkipWhitespace())) {
    std::vector<std::string> w = absl::StrSplit(item, ' ', absl::SkipEmpty());
    bool desc = false;
    if (w.size() == 2 && (w[1] == "desc" || w[1] == "asc")) {
      desc = w[1] == "desc";
    } else if (w.size() != 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "order_by: '", absl::StripAsciiWhitespace(item), "' is not '<field>[ desc]'"));
    }
    auto fn = ResultField(w[0]);
    if (!fn.ok()) return fn.status();
    order.push_back({*fn, desc});
  }
  std::set<std::string> types;
  for (int i = 0; i < req.matrix_types_size(); ++i) {
    auto t = laser::CanonicalMatrixType(req.matrix_types(i));
    if (!t.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("matrix_types[", i, "]: ", t.status().message()));
    }
    types.insert(*t);
  }
  pb::Job job;
  {
    auto j = GetJob(req.job_id());
    if (!j.ok()) return j.status();
    job = *j;
  }
  auto all = store_->Results(req.job_id());
  if (!all.ok()) return all.status();
  std::vector<pb::Result> rs;
  for (pb::Result& r : *all) {
    if (!types.empty() && !types.count(r.intervention().matrix_type())) continue;
    if (req.layers_size() > 0 && std::find(req.layers().begin(), req.layers().end(),
                                           r.intervention().layer()) == req.layers().end()) {
      continue;
    }
    if (req.kind() != pb::RESULT_KIND_UNSPECIFIED && r.kind() != req.kind()) continue;
    rs.push_back(std::move(r));
  }
  std::stable_sort(rs.begin(), rs.end(), [&](const pb::Result& a, const pb::Result& b) {
    for (const auto& [fn, desc] : order) {
      SortKey ka = fn(a), kb = fn(b);
      if (ka == kb) continue;
      return desc ? kb < ka : ka < kb;
    }
    return a.index() < b.index();
  });
  pb::ListResultsResponse resp;
  resp.set_total_size(static_cast<int64_t>(rs.size()));
  for (int64_t i = *off; i < static_cast<int64_t>(rs.size()) && i < *off + *size; ++i) {
    *resp.add_results() = rs[i];
  }
  if (*off + *size < static_cast<int64_t>(rs.size())) {
    resp.set_next_page_token(std::to_string(*off + *size));
  }
  if (job.has_baseline()) *resp.mutable_baseline() = job.baseline();
  return resp;
}

absl::Status Core::StartWatch(const pb::WatchJobRequest& req, WatchReactor* w) {
  if (req.job_id().empty()) return absl::InvalidArgumentError("job_id: required");
  if (req.from_result_index() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("from_result_index: ", req.from_result_index(), " is negative"));
  }
  std::lock_guard<std::mutex> lock(mu_);
  pb::Job job;
  if (req.job_id() == running_id_) {
    job = running_;
  } else {
    auto sj = store_->GetJob(req.job_id());
    if (!sj.ok()) return sj.status();
    job = sj->job;
  }
  auto results = store_->Results(req.job_id(), req.from_result_index());
  if (!results.ok()) return results.status();
  pb::WatchJobEvent ev;
  *ev.mutable_time() = Now();
  *ev.mutable_job() = job;
  w->Push(ev, false);
  for (pb::Result& r : *results) {
    pb::WatchJobEvent re;
    *re.mutable_time() = Now();
    *re.mutable_result() = std::move(r);
    w->Push(re, false);
  }
  if (Terminal(job.state())) {
    w->FinishWith(grpc::Status::OK);
  } else {
    watchers_[req.job_id()].insert(w);
  }
  return absl::OkStatus();
}

void Core::EndWatch(WatchReactor* w) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = watchers_.find(w->job_id());
  if (it == watchers_.end()) return;
  it->second.erase(w);
  if (it->second.empty()) watchers_.erase(it);
}

absl::StatusOr<pb::ModelInfo> Core::DescribeModel() {
  if (auto st = ModelReady(); !st.ok()) return st;
  pb::ModelInfo mi = model_info_;
  const auto [total, avail] = HostMemoryBytes();
  mi.mutable_memory()->set_device_total_bytes(total);
  mi.mutable_memory()->set_device_free_bytes(avail);
  mi.mutable_memory()->set_process_rss_bytes(ProcessRssBytes());
  return mi;
}

absl::StatusOr<pb::Spectrum> Core::GetSpectrum(const pb::GetSpectrumRequest& req) {
  if (auto st = ModelReady(); !st.ok()) return st;
  if (req.matrix_type().empty()) return absl::InvalidArgumentError("matrix_type: required");
  if (req.matrix_type() == "mlp" || req.matrix_type() == "attn" || req.matrix_type() == "all") {
    return absl::InvalidArgumentError(
        absl::StrCat("matrix_type: '", req.matrix_type(), "' is a group; name one matrix type"));
  }
  auto type = laser::CanonicalMatrixType(req.matrix_type());
  if (!type.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("matrix_type: ", type.status().message()));
  }
  const std::vector<std::string> have = lm_.model->MatrixTypes();
  if (std::find(have.begin(), have.end(), *type) == have.end()) {
    return absl::InvalidArgumentError(absl::StrCat("matrix_type: the model has no ", *type,
                                                   " (it has ", absl::StrJoin(have, ", "), ")"));
  }
  const int64_t layers = lm_.model->config().layers;
  if (req.layer() < 0 || req.layer() >= layers) {
    return absl::InvalidArgumentError(
        absl::StrCat("layer: ", req.layer(), " is not in [0, ", layers, ")"));
  }
  const auto key = std::make_pair(*type, int64_t{req.layer()});
  {
    std::lock_guard<std::mutex> lock(spectra_mu_);
    if (auto it = spectra_.find(key); it != spectra_.end()) return it->second;
  }
  absl::StatusOr<std::vector<float>> host;
  int64_t rows = 0, cols = 0;
  {
    ++spectrum_waiting_;
    std::lock_guard<std::mutex> ml(model_mu_);
    --spectrum_waiting_;
    auto w = lm_.model->Matrix(*type, req.layer());
    if (!w.ok()) return w.status();
    rows = (*w)->rows();
    cols = (*w)->cols();
    lm_.backend->BindThread();  // an RPC thread (CUDA: the current device is per thread)
    host = laser::MatrixToHost(lm_.model.get(), *type, req.layer());
  }
  if (!host.ok()) return host.status();
  auto svd = laser::ExactSpectrumSvd(*host, rows, cols, 1);
  if (!svd.ok()) return svd.status();
  pb::Spectrum sp;
  sp.set_matrix_type(*type);
  sp.set_layer(req.layer());
  sp.set_rows(rows);
  sp.set_cols(cols);
  sp.set_max_rank(std::min(rows, cols));
  std::vector<double> s(svd->spectrum.begin(), svd->spectrum.end());
  for (double v : s) sp.add_singular_values(v);
  sp.set_frobenius_norm(std::sqrt(svd->frobenius_sq));
  // The Marchenko-Pastur suggestion (engine/laser/spectrum.h; also used by
  // sweeps with add_suggested_rank).
  auto fit = laser::MarchenkoPasturRank(s, rows, cols, svd->frobenius_sq);
  if (!fit.ok()) return fit.status();
  pb::MarchenkoPastur* mp = sp.mutable_marchenko_pastur();
  mp->set_sigma(fit->sigma);
  mp->set_beta(fit->beta);
  mp->set_threshold(fit->threshold);
  mp->set_suggested_rank(fit->rank);
  mp->set_suggested_rho(fit->rho);
  mp->set_relative_error(fit->relative_error);
  std::lock_guard<std::mutex> lock(spectra_mu_);
  spectra_[key] = sp;
  return sp;
}

absl::StatusOr<pb::Dataset> Core::StoreDataset(const std::string& display_name,
                                               const std::string& expected_sha256,
                                               const std::string& bytes) {
  if (display_name.size() > 255) {
    return absl::InvalidArgumentError(
        absl::StrCat("header.display_name: ", display_name.size(), " characters; at most 255"));
  }
  if (bytes.empty()) return absl::InvalidArgumentError("dataset: the upload is empty (no bytes)");
  const std::string id = Sha256Hex(bytes);
  if (!expected_sha256.empty() && absl::AsciiStrToLower(expected_sha256) != id) {
    return absl::DataLossError(absl::StrCat("header.expected_sha256: ", expected_sha256,
                                            " but the received bytes hash to ", id));
  }
  if (auto prev = store_->GetDataset(id); prev.ok()) return *prev;
  auto ds = eval::ParseDataset(bytes, display_name.empty() ? "upload" : display_name);
  if (!ds.ok()) return ds.status();
  pb::Dataset d;
  d.set_id(id);
  d.set_display_name(display_name);
  d.set_size_bytes(static_cast<int64_t>(bytes.size()));
  d.set_example_count(static_cast<int64_t>(ds->examples.size()));
  for (const eval::Example& e : ds->examples) {
    if (e.kind == eval::ExampleKind::kChoice) {
      d.set_choice_count(d.choice_count() + 1);
    } else {
      d.set_completion_count(d.completion_count() + 1);
    }
  }
  *d.mutable_create_time() = Now();
  if (auto s = store_->PutDataset(d, bytes); !s.ok()) return s;
  spdlog::info("dataset {} stored: {} records, {} bytes", id, d.example_count(), d.size_bytes());
  return d;
}

absl::StatusOr<pb::ListDatasetsResponse> Core::ListDatasets(const pb::ListDatasetsRequest& req) {
  auto size = PageSize(req.page_size(), 50, 1000);
  if (!size.ok()) return size.status();
  auto off = PageOffset(req.page_token());
  if (!off.ok()) return off.status();
  auto all = store_->ListDatasets();
  if (!all.ok()) return all.status();
  pb::ListDatasetsResponse resp;
  for (int64_t i = *off; i < static_cast<int64_t>(all->size()) && i < *off + *size; ++i) {
    *resp.add_datasets() = (*all)[i];
  }
  if (*off + *size < static_cast<int64_t>(all->size())) {
    resp.set_next_page_token(std::to_string(*off + *size));
  }
  return resp;
}

absl::StatusOr<pb::Dataset> Core::GetDataset(const std::string& id) {
  if (id.empty()) return absl::InvalidArgumentError("dataset_id: required");
  return store_->GetDataset(id);
}

Metrics::Snapshot Core::Sample() {
  Metrics::Snapshot s;
  for (pb::JobState st : {pb::JOB_STATE_QUEUED, pb::JOB_STATE_RUNNING, pb::JOB_STATE_SUCCEEDED,
                          pb::JOB_STATE_FAILED, pb::JOB_STATE_CANCELLED}) {
    s.jobs_by_state[StateName(st)] = 0;
  }
  if (auto jobs = store_->ListJobs(); jobs.ok()) {
    for (const StoredJob& j : *jobs) ++s.jobs_by_state[StateName(j.job.state())];
  }
  std::lock_guard<std::mutex> lock(mu_);
  s.queue_depth = static_cast<int64_t>(queue_.size());
  s.interventions_per_second = running_id_.empty() ? 0 : ips_;
  s.serving = resident_;
  return s;
}

std::string Core::StatusJson() {
  Metrics::Snapshot s = Sample();
  nlohmann::json j;
  j["serving"] = s.serving;
  j["model"] = resident_ ? model_info_.name() : "";
  j["model_sha256"] = resident_ ? model_info_.sha256() : "";
  j["jobs"] = s.jobs_by_state;
  j["queue_depth"] = s.queue_depth;
  j["interventions_total"] = metrics_.interventions_total();
  j["interventions_per_second"] = s.interventions_per_second;
  j["process_rss_bytes"] = ProcessRssBytes();
  j["devices"] = resident_ ? device_names_ : std::vector<std::string>{};
  {
    std::lock_guard<std::mutex> lock(mu_);
    j["running_job"] = running_id_;
  }
  return j.dump();
}

std::string Core::JobsJson() {
  nlohmann::json arr = nlohmann::json::array();
  auto jobs = store_->ListJobs();
  if (jobs.ok()) {
    google::protobuf::util::JsonPrintOptions o;
    o.preserve_proto_field_names = true;
    for (StoredJob& sj : *jobs) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (sj.job.id() == running_id_) sj.job = running_;
      }
      std::string s;
      if (google::protobuf::util::MessageToJsonString(sj.job, &s, o).ok()) {
        arr.push_back(nlohmann::json::parse(s));
      }
    }
  }
  return nlohmann::json{{"jobs", arr}}.dump();
}

// ---------------------------------------------------------------------------
// WatchReactor
// ---------------------------------------------------------------------------

void WatchReactor::Push(const pb::WatchJobEvent& ev, bool terminal) {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  if (finished_ || finish_after_) return;
  if (ev.has_result()) {
    if (ev.result().index() < next_index_) return;  // replayed already
    next_index_ = ev.result().index() + 1;
  }
  q_.push_back(ev);
  if (terminal) finish_after_ = true;
  if (!writing_) WriteNextLocked();
}

void WatchReactor::FinishWith(const grpc::Status& s) {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  if (finished_) return;
  if (s.ok()) {
    finish_after_ = true;
    if (!writing_) WriteNextLocked();
  } else {
    finished_ = true;
    Finish(s);
  }
}

void WatchReactor::WriteNextLocked() {
  if (finished_) return;
  if (q_head_ < q_.size()) {
    cur_ = std::move(q_[q_head_++]);
    if (q_head_ == q_.size()) {
      q_.clear();
      q_head_ = 0;
    }
    writing_ = true;
    StartWrite(&cur_);
  } else if (finish_after_) {
    finished_ = true;
    Finish(grpc::Status::OK);
  }
}

void WatchReactor::OnWriteDone(bool ok) {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  writing_ = false;
  if (!ok) {
    if (!finished_) {
      finished_ = true;
      Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "write failed"));
    }
    return;
  }
  WriteNextLocked();
}

void WatchReactor::OnCancel() {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  if (!finished_ && !writing_) {
    finished_ = true;
    Finish(grpc::Status::CANCELLED);
  } else {
    finish_after_ = true;
    q_.clear();
    q_head_ = 0;
  }
}

void WatchReactor::OnDone() {
  core_->EndWatch(this);
  delete this;
}

// ---------------------------------------------------------------------------
// gRPC shells
// ---------------------------------------------------------------------------

namespace {

// Authorizes, runs `fn`, maps its status, finishes and records the RPC.
template <typename Fn>
grpc::ServerUnaryReactor* Unary(Core* core, grpc::CallbackServerContext* ctx, const char* method,
                                bool write, Fn fn) {
  const auto t0 = Clock::now();
  absl::Status st = core->Authorize(ctx, write);
  if (st.ok()) st = fn();
  grpc::Status gs = ToGrpc(st);
  core->metrics().RecordRpc(method, GrpcCodeName(gs.error_code()),
                            std::chrono::duration<double>(Clock::now() - t0).count());
  if (!gs.ok() && gs.error_code() != grpc::StatusCode::NOT_FOUND) {
    spdlog::info("rpc {} -> {}: {}", method, GrpcCodeName(gs.error_code()), gs.error_message());
  }
  auto* r = ctx->DefaultReactor();
  r->Finish(gs);
  return r;
}

template <typename T>
absl::Status Assign(absl::StatusOr<T> v, T* out) {
  if (!v.ok()) return v.status();
  *out = *std::move(v);
  return absl::OkStatus();
}

}  // namespace

grpc::ServerUnaryReactor* SweepServiceImpl::CreateSweep(grpc::CallbackServerContext* ctx,
                                                        const pb::CreateSweepRequest* req,
                                                        pb::Job* resp) {
  return Unary(core_, ctx, "CreateSweep", true,
               [&] { return Assign(core_->CreateSweep(*req), resp); });
}
grpc::ServerUnaryReactor* SweepServiceImpl::GetJob(grpc::CallbackServerContext* ctx,
                                                   const pb::GetJobRequest* req, pb::Job* resp) {
  return Unary(core_, ctx, "GetJob", false,
               [&] { return Assign(core_->GetJob(req->job_id()), resp); });
}
grpc::ServerUnaryReactor* SweepServiceImpl::ListJobs(grpc::CallbackServerContext* ctx,
                                                     const pb::ListJobsRequest* req,
                                                     pb::ListJobsResponse* resp) {
  return Unary(core_, ctx, "ListJobs", false, [&] { return Assign(core_->ListJobs(*req), resp); });
}
grpc::ServerUnaryReactor* SweepServiceImpl::CancelJob(grpc::CallbackServerContext* ctx,
                                                      const pb::CancelJobRequest* req,
                                                      pb::Job* resp) {
  return Unary(core_, ctx, "CancelJob", true,
               [&] { return Assign(core_->CancelJob(req->job_id()), resp); });
}
grpc::ServerUnaryReactor* SweepServiceImpl::DeleteJob(grpc::CallbackServerContext* ctx,
                                                      const pb::DeleteJobRequest* req,
                                                      google::protobuf::Empty*) {
  return Unary(core_, ctx, "DeleteJob", true, [&] { return core_->DeleteJob(*req); });
}
grpc::ServerUnaryReactor* SweepServiceImpl::ListResults(grpc::CallbackServerContext* ctx,
                                                        const pb::ListResultsRequest* req,
                                                        pb::ListResultsResponse* resp) {
  return Unary(core_, ctx, "ListResults", false,
               [&] { return Assign(core_->ListResults(*req), resp); });
}

grpc::ServerWriteReactor<pb::WatchJobEvent>* SweepServiceImpl::WatchJob(
    grpc::CallbackServerContext* ctx, const pb::WatchJobRequest* req) {
  const auto t0 = Clock::now();
  auto* w = new WatchReactor(core_, req->job_id(), req->from_result_index());
  absl::Status st = core_->Authorize(ctx, false);
  if (st.ok()) st = core_->StartWatch(*req, w);
  const grpc::Status gs = ToGrpc(st);
  core_->metrics().RecordRpc("WatchJob", GrpcCodeName(gs.error_code()),
                             std::chrono::duration<double>(Clock::now() - t0).count());
  if (!gs.ok()) w->FinishWith(gs);
  return w;
}

grpc::ServerUnaryReactor* ModelServiceImpl::DescribeModel(grpc::CallbackServerContext* ctx,
                                                          const pb::DescribeModelRequest*,
                                                          pb::ModelInfo* resp) {
  return Unary(core_, ctx, "DescribeModel", false,
               [&] { return Assign(core_->DescribeModel(), resp); });
}
grpc::ServerUnaryReactor* ModelServiceImpl::GetSpectrum(grpc::CallbackServerContext* ctx,
                                                        const pb::GetSpectrumRequest* req,
                                                        pb::Spectrum* resp) {
  return Unary(core_, ctx, "GetSpectrum", false,
               [&] { return Assign(core_->GetSpectrum(*req), resp); });
}
grpc::ServerUnaryReactor* DatasetServiceImpl::ListDatasets(grpc::CallbackServerContext* ctx,
                                                           const pb::ListDatasetsRequest* req,
                                                           pb::ListDatasetsResponse* resp) {
  return Unary(core_, ctx, "ListDatasets", false,
               [&] { return Assign(core_->ListDatasets(*req), resp); });
}
grpc::ServerUnaryReactor* DatasetServiceImpl::GetDataset(grpc::CallbackServerContext* ctx,
                                                         const pb::GetDatasetRequest* req,
                                                         pb::Dataset* resp) {
  return Unary(core_, ctx, "GetDataset", false,
               [&] { return Assign(core_->GetDataset(req->dataset_id()), resp); });
}

namespace {

// Client-streamed upload: header, then chunks; validated and stored at the end.
class UploadReactor : public grpc::ServerReadReactor<pb::UploadDatasetRequest> {
 public:
  UploadReactor(Core* core, grpc::CallbackServerContext* ctx, pb::Dataset* resp)
      : core_(core), resp_(resp), t0_(Clock::now()) {
    absl::Status st = core_->Authorize(ctx, true);
    if (!st.ok()) {
      Done(st);
      return;
    }
    StartRead(&req_);
  }
  void OnReadDone(bool ok) override {
    if (!ok) {  // end of the stream
      if (!have_header_) {
        Done(absl::InvalidArgumentError("header: the stream ended before the header"));
        return;
      }
      Done([&]() -> absl::Status {
        auto d = core_->StoreDataset(header_.display_name(), header_.expected_sha256(), bytes_);
        if (!d.ok()) return d.status();
        *resp_ = *d;
        return absl::OkStatus();
      }());
      return;
    }
    if (req_.has_header()) {
      if (have_header_) {
        Done(absl::InvalidArgumentError("header: sent twice; it must be the first message only"));
        return;
      }
      have_header_ = true;
      header_ = req_.header();
    } else if (req_.part_case() == pb::UploadDatasetRequest::kChunk) {
      if (!have_header_) {
        Done(absl::InvalidArgumentError("header: the first message must be the header"));
        return;
      }
      if (static_cast<int64_t>(bytes_.size() + req_.chunk().size()) >
          core_->options().max_dataset_bytes) {
        Done(absl::ResourceExhaustedError(absl::StrCat("dataset: over this server's limit of ",
                                                       core_->options().max_dataset_bytes,
                                                       " bytes (--max-dataset-bytes)")));
        return;
      }
      bytes_ += req_.chunk();
    } else {
      Done(absl::InvalidArgumentError("part: a message with neither header nor chunk"));
      return;
    }
    StartRead(&req_);
  }
  void OnDone() override { delete this; }

 private:
  void Done(const absl::Status& st) {
    const grpc::Status gs = ToGrpc(st);
    core_->metrics().RecordRpc("UploadDataset", GrpcCodeName(gs.error_code()),
                               std::chrono::duration<double>(Clock::now() - t0_).count());
    if (!gs.ok()) {
      spdlog::info("rpc UploadDataset -> {}: {}", GrpcCodeName(gs.error_code()),
                   gs.error_message());
    }
    Finish(gs);
  }
  Core* core_;
  pb::Dataset* resp_;
  Clock::time_point t0_;
  pb::UploadDatasetRequest req_;
  pb::UploadDatasetHeader header_;
  bool have_header_ = false;
  std::string bytes_;
};

}  // namespace

grpc::ServerReadReactor<pb::UploadDatasetRequest>* DatasetServiceImpl::UploadDataset(
    grpc::CallbackServerContext* ctx, pb::Dataset* resp) {
  return new UploadReactor(core_, ctx, resp);
}

}  // namespace laserd::server
