#include "bench/gpu/random_llama.h"

#include <algorithm>
#include <thread>
#include <utility>

namespace laserd::bench {

nlohmann::json LlamaShape::HfConfig() const {
  return {{"model_type", "llama"},
          {"architectures", {"LlamaForCausalLM"}},
          {"hidden_size", hidden},
          {"intermediate_size", intermediate},
          {"num_hidden_layers", layers},
          {"num_attention_heads", heads},
          {"num_key_value_heads", heads},
          {"vocab_size", vocab},
          {"max_position_embeddings", 4096},
          {"rms_norm_eps", 1e-5},
          {"rope_theta", 10000.0},
          {"tie_word_embeddings", false},
          {"hidden_act", "silu"}};
}

double LlamaShape::LayerFlopsPerToken() const {
  const double d = hidden, f = intermediate;
  return 2.0 * layers * (4 * d * d + 3 * d * f);
}

namespace {

float Uniform(uint64_t seed, uint64_t i, float a) {
  uint64_t z = seed * 0x9E3779B97F4A7C15ull + (i + 1) * 0xD1B54A32D192ED03ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return a * (static_cast<float>(z >> 40) * (2.0f / 16777216.0f) - 1.0f);
}

}  // namespace

void FillUniformParallel(uint64_t seed, float a, float* out, int64_t n) {
  const int64_t threads =
      std::clamp<int64_t>(std::thread::hardware_concurrency(), 1, std::max<int64_t>(1, n >> 16));
  std::vector<std::thread> pool;
  for (int64_t t = 0; t < threads; ++t) {
    pool.emplace_back([=] {
      for (int64_t i = n * t / threads; i < n * (t + 1) / threads; ++i)
        out[i] = Uniform(seed, i, a);
    });
  }
  for (auto& th : pool) th.join();
}

RandomLlama::RandomLlama(const LlamaShape& s) : meta_(s.HfConfig()) {
  const int64_t d = s.hidden, f = s.intermediate;
  Add("model.embed_tokens.weight", {s.vocab, d});
  Add("model.norm.weight", {d});
  Add("lm_head.weight", {s.vocab, d});
  for (int64_t i = 0; i < s.layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    for (const char* t :
         {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj"}) {
      Add(p + t + ".weight", {d, d});
    }
    Add(p + "mlp.gate_proj.weight", {f, d});
    Add(p + "mlp.up_proj.weight", {f, d});
    Add(p + "mlp.down_proj.weight", {d, f});
    Add(p + "input_layernorm.weight", {d});
    Add(p + "post_attention_layernorm.weight", {d});
  }
}

void RandomLlama::Add(const std::string& name, std::vector<int64_t> shape) {
  index_[name] = infos_.size();
  infos_.push_back({name, std::move(shape), formats::DType::kBF16});
}

absl::StatusOr<formats::TensorF32> RandomLlama::LoadF32(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) return absl::NotFoundError(name);
  formats::TensorF32 t;
  t.shape = infos_[it->second].shape;
  t.data.resize(infos_[it->second].NumElements());
  if (t.shape.size() == 1) {
    std::fill(t.data.begin(), t.data.end(), 1.0f);
  } else {  // std 0.02: a = 0.02·√3
    FillUniformParallel(it->second + 17, 0.0346f, t.data.data(),
                        static_cast<int64_t>(t.data.size()));
  }
  return t;
}

}  // namespace laserd::bench
