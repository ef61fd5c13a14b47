// How a stored tensor (architecture.h MatrixTensor) holds its matrices, and
// the host conversions both ways: the loader splits stored tensors into
// matrices W [out, in]; the exporter joins matrices back into the file's
// layout. Row-major float data throughout.
#ifndef LASERD_ENGINE_MODEL_MATRIX_LAYOUT_H_
#define LASERD_ENGINE_MODEL_MATRIX_LAYOUT_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "engine/model/architecture.h"
#include "engine/model/config.h"

namespace laserd::model {

// W(type)'s shape [out, in] under `c`.
std::pair<int64_t, int64_t> MatrixShape(const ModelConfig& c, const std::string& type);

// The rows of each matrix of `t` in its stored tensor ([total, in] once a
// Conv1D layout is undone): W(t.types[j]) is, for every b < blocks, rows
// [b·stride + offset[j], b·stride + offset[j] + rows[j]). Unfused: one block.
struct FusedRows {
  int64_t blocks = 1, stride = 0, total = 0;  // total: the tensor's rows
  std::vector<int64_t> offset, rows;          // per matrix, rows per block
};
FusedRows FusedRowsOf(const ModelConfig& c, const MatrixTensor& t);

// The stored tensor's shape: [total, in], or [in, total] for Conv1D.
std::vector<int64_t> StoredShape(const ModelConfig& c, const MatrixTensor& t);
// The matrices (one per t.types, each [out, in]) of a stored weight tensor of
// StoredShape. Callers check the shape first.
std::vector<std::vector<float>> SplitStored(const ModelConfig& c, const MatrixTensor& t,
                                            std::vector<float> stored);
// The biases (one per t.types, each [out]) of a stored bias [total].
std::vector<std::vector<float>> SplitStoredBias(const ModelConfig& c, const MatrixTensor& t,
                                                const std::vector<float>& stored);
// The inverse of SplitStored: the stored weight tensor holding `matrices`.
std::vector<float> JoinStored(const ModelConfig& c, const MatrixTensor& t,
                              const std::vector<std::vector<float>>& matrices);

// "[a, b, …]".
std::string ShapeString(const std::vector<int64_t>& shape);

}  // namespace laserd::model

#endif  // LASERD_ENGINE_MODEL_MATRIX_LAYOUT_H_
