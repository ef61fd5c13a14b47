#include "engine/model/matrix_layout.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace laserd::model {
namespace {

// Transposes a [rows, cols] matrix.
std::vector<float> Transpose(const std::vector<float>& a, int64_t rows, int64_t cols) {
  std::vector<float> t(a.size());
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) t[j * rows + i] = a[i * cols + j];
  return t;
}

// Matrix j's rows of a [fr.total, cols] tensor, in order.
std::vector<float> Gather(const std::vector<float>& a, const FusedRows& fr, size_t j,
                          int64_t cols) {
  std::vector<float> r(fr.rows[j] * fr.blocks * cols);
  for (int64_t b = 0; b < fr.blocks; ++b) {
    const int64_t from = b * fr.stride + fr.offset[j];
    std::copy(a.begin() + from * cols, a.begin() + (from + fr.rows[j]) * cols,
              r.begin() + b * fr.rows[j] * cols);
  }
  return r;
}

int64_t InputsOf(const ModelConfig& c, const MatrixTensor& t) {
  return MatrixShape(c, t.types[0]).second;
}

}  // namespace

std::pair<int64_t, int64_t> MatrixShape(const ModelConfig& c, const std::string& type) {
  const int64_t d = c.hidden, q = c.heads * c.head_dim, kv = c.kv_heads * c.head_dim;
  if (type == "attn.q") return {q, d};
  if (type == "attn.k" || type == "attn.v") return {kv, d};
  if (type == "attn.o") return {d, q};
  if (type == "mlp.in" || type == "mlp.up") return {c.intermediate, d};
  if (type == "mlp.out") return {d, c.intermediate};
  if (type == kRouterMatrixType) return {c.experts, d};
  if (type == kSharedExpertGateType) return {1, d};
  if (auto ex = ParseExpertMatrixType(type); ex && ex->second < c.experts) {
    if (ex->first == "moe.out") return {d, c.moe_intermediate};
    return {c.moe_intermediate, d};
  }
  return {0, 0};
}

FusedRows FusedRowsOf(const ModelConfig& c, const MatrixTensor& t) {
  FusedRows r;
  const bool per_head = t.types.size() > 1 && t.split == FusedSplit::kPerHead;
  r.blocks = per_head ? c.heads : 1;
  for (const std::string& type : t.types) {
    r.offset.push_back(r.stride);
    r.rows.push_back(MatrixShape(c, type).first / r.blocks);
    r.stride += r.rows.back();
  }
  r.total = r.stride * r.blocks;
  return r;
}

std::vector<int64_t> StoredShape(const ModelConfig& c, const MatrixTensor& t) {
  const int64_t total = FusedRowsOf(c, t).total, in = InputsOf(c, t);
  if (t.layout == MatrixLayout::kConv1D) return {in, total};
  return {total, in};
}

std::vector<std::vector<float>> SplitStored(const ModelConfig& c, const MatrixTensor& t,
                                            std::vector<float> stored) {
  const FusedRows fr = FusedRowsOf(c, t);
  const int64_t in = InputsOf(c, t);
  if (t.layout == MatrixLayout::kConv1D) stored = Transpose(stored, in, fr.total);
  if (t.types.size() == 1) return {std::move(stored)};
  std::vector<std::vector<float>> r;
  for (size_t j = 0; j < t.types.size(); ++j) r.push_back(Gather(stored, fr, j, in));
  return r;
}

std::vector<std::vector<float>> SplitStoredBias(const ModelConfig& c, const MatrixTensor& t,
                                                const std::vector<float>& stored) {
  const FusedRows fr = FusedRowsOf(c, t);
  std::vector<std::vector<float>> r;
  for (size_t j = 0; j < t.types.size(); ++j) r.push_back(Gather(stored, fr, j, 1));
  return r;
}

std::vector<float> JoinStored(const ModelConfig& c, const MatrixTensor& t,
                              const std::vector<std::vector<float>>& matrices) {
  const FusedRows fr = FusedRowsOf(c, t);
  const int64_t in = InputsOf(c, t);
  std::vector<float> w(fr.total * in);
  for (size_t j = 0; j < t.types.size(); ++j) {
    const std::vector<float>& m = matrices[j];
    for (int64_t b = 0; b < fr.blocks; ++b) {
      std::copy(m.begin() + b * fr.rows[j] * in, m.begin() + (b + 1) * fr.rows[j] * in,
                w.begin() + (b * fr.stride + fr.offset[j]) * in);
    }
  }
  if (t.layout == MatrixLayout::kConv1D) return Transpose(w, fr.total, in);
  return w;
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  std::string r = "[";
  for (size_t i = 0; i < shape.size(); ++i) absl::StrAppend(&r, i ? ", " : "", shape[i]);
  return r + "]";
}

}  // namespace laserd::model
