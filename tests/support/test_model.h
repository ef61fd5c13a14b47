// A model loaded for a test: the backend, the weight source and the Model kept
// alive together, from a path or from a source the caller keeps.
#ifndef LASERD_TESTS_SUPPORT_TEST_MODEL_H_
#define LASERD_TESTS_SUPPORT_TEST_MODEL_H_

#include <memory>
#include <string>

#include "engine/formats/weights.h"
#include "engine/model/model.h"
#include "kernels/ops.h"

namespace laserd::test_support {

struct LoadedModel {
  std::unique_ptr<kernels::Backend> backend;
  std::unique_ptr<formats::WeightSource> src;  // null when the caller owns the source
  std::unique_ptr<model::Model> model;
};

// Opens `path` (a GGUF file, a safetensors file or a model directory) and loads
// it on `device` ("cpu", "cuda", "cuda/bf16", ...). Each step that fails adds a
// test failure naming the device and leaves the rest null, so that callers
// ASSERT_NE(l.model, nullptr) before using it.
LoadedModel LoadTestModel(const std::string& path, const std::string& device = "cpu");
// The same for a source the caller opened and keeps alive (`src` stays null).
LoadedModel LoadTestModel(const formats::WeightSource& source, const std::string& device);

}  // namespace laserd::test_support

#endif  // LASERD_TESTS_SUPPORT_TEST_MODEL_H_
