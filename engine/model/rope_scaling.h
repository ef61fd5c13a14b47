// Rotary position frequencies: the plain ones and the scaled kinds that
// Hugging Face configs declare (rope_scaling / rope_parameters rope_type):
// linear, dynamic (NTK), yarn, llama3 and longrope, computed as transformers'
// rope initialisation functions compute them (fp32 steps where torch takes
// them), plus the factor yarn and longrope apply to cos and sin.
//
// Two kinds depend on the length of the sequence, as in transformers:
// dynamic stretches the base for a sequence longer than
// max_position_embeddings (to that sequence's length), longrope switches from
// its short to its long factors for a sequence longer than
// original_max_position_embeddings. laserd computes each sequence's
// frequencies from its own length (transformers uses the longest position of
// the batch, and its dynamic rotary cache keeps the longest length seen until
// a sequence no longer than max_position_embeddings resets it).
#ifndef LASERD_ENGINE_MODEL_ROPE_SCALING_H_
#define LASERD_ENGINE_MODEL_ROPE_SCALING_H_

#include <cstdint>
#include <string>
#include <vector>

namespace laserd::model {

enum class RopeType { kDefault, kLinear, kDynamic, kYarn, kLlama3, kLongRope };

// "default", "linear", "dynamic", "yarn", "llama3", "longrope".
const char* RopeTypeName(RopeType t);

struct RopeScaling {
  RopeType type = RopeType::kDefault;
  double factor = 1.0;  // linear, dynamic, yarn, llama3; longrope: ratio of context lengths
  // The context the frequencies were trained for: llama3, yarn, longrope
  // (original_max_position_embeddings); dynamic: max_position_embeddings.
  int64_t original_max_positions = 0;
  double low_freq_factor = 1.0, high_freq_factor = 4.0;  // llama3
  double beta_fast = 32.0, beta_slow = 1.0;              // yarn
  bool truncate = true;                                  // yarn
  // Multiplies cos and sin (yarn, longrope; 1 otherwise).
  double attention_factor = 1.0;
  std::vector<double> short_factor, long_factor;  // longrope, rotary_dim / 2 each
  // Divisors of the inverse frequencies (rotary_dim / 2; empty: none), as
  // llama.cpp stores Llama 3's llama3 scaling in GGUF (rope_freqs).
  std::vector<double> freq_factors;
};

// Whether a sequence's frequencies depend on its length (dynamic, longrope).
bool RopeDependsOnLength(const RopeScaling& s);

// The same value for every two sequence lengths that get the same frequencies.
int64_t RopeLengthClass(const RopeScaling& s, int64_t seq_len);

struct RopeFrequencies {
  std::vector<float> inv_freq;  // rotary_dim / 2
  float attention_factor = 1.0f;
};

// The inverse frequencies of a rotary embedding over `rotary_dim` dims with
// base `theta` for a sequence of `seq_len` tokens.
RopeFrequencies ComputeRopeFrequencies(const RopeScaling& s, double theta, int rotary_dim,
                                       int64_t seq_len);

}  // namespace laserd::model

#endif  // LASERD_ENGINE_MODEL_ROPE_SCALING_H_
