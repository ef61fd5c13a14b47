#include "engine/model/rope_scaling.h"

#include <algorithm>
#include <cmath>

namespace laserd::model {

const char* RopeTypeName(RopeType t) {
  switch (t) {
    case RopeType::kDefault:
      return "default";
    case RopeType::kLinear:
      return "linear";
    case RopeType::kDynamic:
      return "dynamic";
    case RopeType::kYarn:
      return "yarn";
    case RopeType::kLlama3:
      return "llama3";
    case RopeType::kLongRope:
      return "longrope";
  }
  return "?";
}

bool RopeDependsOnLength(const RopeScaling& s) {
  return s.type == RopeType::kDynamic || s.type == RopeType::kLongRope;
}

int64_t RopeLengthClass(const RopeScaling& s, int64_t seq_len) {
  switch (s.type) {
    case RopeType::kDynamic:
      return std::max(seq_len, s.original_max_positions);
    case RopeType::kLongRope:
      return seq_len > s.original_max_positions ? 1 : 0;
    default:
      return 0;
  }
}

namespace {

// base ** (2f / dim) for f < dim / 2, in fp32 as torch computes
// `base ** (torch.arange(0, dim, 2).float() / dim)`.
std::vector<float> BasePowers(float base, int dim) {
  std::vector<float> p(dim / 2);
  for (int f = 0; f < dim / 2; ++f) {
    p[f] = std::pow(base, static_cast<float>(2 * f) / static_cast<float>(dim));
  }
  return p;
}

}  // namespace

RopeFrequencies ComputeRopeFrequencies(const RopeScaling& s, double theta, int rotary_dim,
                                       int64_t seq_len) {
  const int half = rotary_dim / 2;
  RopeFrequencies r;
  r.inv_freq.resize(half);
  std::vector<float>& inv = r.inv_freq;
  float base = static_cast<float>(theta);
  if (s.type == RopeType::kDynamic) {
    // base * ((factor * L / max) - (factor - 1)) ** (dim / (dim - 2)), L at least max.
    const float len = static_cast<float>(std::max(seq_len, s.original_max_positions));
    const float f = static_cast<float>(s.factor);
    const float t = f * len / static_cast<float>(s.original_max_positions) - (f - 1.0f);
    base = base * std::pow(t, static_cast<float>(static_cast<double>(rotary_dim) /
                                                 static_cast<double>(rotary_dim - 2)));
  }
  const std::vector<float> pw = BasePowers(base, rotary_dim);
  for (int f = 0; f < half; ++f) inv[f] = 1.0f / pw[f];
  switch (s.type) {
    case RopeType::kDefault:
    case RopeType::kDynamic:
      break;
    case RopeType::kLinear:
      for (float& v : inv) v /= static_cast<float>(s.factor);
      break;
    case RopeType::kLlama3: {
      const float factor = static_cast<float>(s.factor);
      const double old_ctx = static_cast<double>(s.original_max_positions);
      const float low_wavelen = static_cast<float>(old_ctx / s.low_freq_factor);
      const float high_wavelen = static_cast<float>(old_ctx / s.high_freq_factor);
      for (float& v : inv) {
        const float wavelen = static_cast<float>(2.0 * M_PI) / v;
        const float scaled = wavelen > low_wavelen ? v / factor : v;
        const float smooth =
            (static_cast<float>(old_ctx) / wavelen - static_cast<float>(s.low_freq_factor)) /
            static_cast<float>(s.high_freq_factor - s.low_freq_factor);
        const float smoothed = (1.0f - smooth) * scaled / factor + smooth * scaled;
        const bool medium = !(wavelen < high_wavelen) && !(wavelen > low_wavelen);
        v = medium ? smoothed : scaled;
      }
      break;
    }
    case RopeType::kYarn: {
      const double dim = rotary_dim;
      const double omax = static_cast<double>(s.original_max_positions);
      auto correction_dim = [&](double rotations) {
        return dim * std::log(omax / (rotations * 2.0 * M_PI)) / (2.0 * std::log(theta));
      };
      double low = correction_dim(s.beta_fast), high = correction_dim(s.beta_slow);
      if (s.truncate) low = std::floor(low), high = std::ceil(high);
      low = std::max(low, 0.0);
      high = std::min(high, dim - 1);
      if (low == high) high += 0.001;
      const float factor = static_cast<float>(s.factor);
      for (int f = 0; f < half; ++f) {
        const float ramp = std::clamp(
            (static_cast<float>(f) - static_cast<float>(low)) / static_cast<float>(high - low),
            0.0f, 1.0f);
        const float extrap = 1.0f - ramp;
        const float inv_extrap = 1.0f / pw[f], inv_interp = 1.0f / (factor * pw[f]);
        inv[f] = inv_interp * (1.0f - extrap) + inv_extrap * extrap;
      }
      break;
    }
    case RopeType::kLongRope: {
      const std::vector<double>& ext =
          seq_len > s.original_max_positions ? s.long_factor : s.short_factor;
      for (int f = 0; f < half; ++f) inv[f] = 1.0f / (static_cast<float>(ext[f]) * pw[f]);
      break;
    }
  }
  if (!s.freq_factors.empty()) {
    for (int f = 0; f < half; ++f) inv[f] /= static_cast<float>(s.freq_factors[f]);
  }
  r.attention_factor = static_cast<float>(s.attention_factor);
  return r;
}

}  // namespace laserd::model
