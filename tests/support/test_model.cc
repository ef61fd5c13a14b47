// Loading a model in a test (test_model.h).
#include "tests/support/test_model.h"

#include <utility>

#include "gtest/gtest.h"

namespace laserd::test_support {

LoadedModel LoadTestModel(const formats::WeightSource& source, const std::string& device) {
  LoadedModel l;
  auto b = kernels::MakeBackend(device);
  EXPECT_TRUE(b.ok()) << device << ": " << b.status();
  if (!b.ok()) return l;
  l.backend = *std::move(b);
  auto m = model::Model::Load(source, l.backend.get());
  EXPECT_TRUE(m.ok()) << device << ": " << m.status();
  if (m.ok()) l.model = *std::move(m);
  return l;
}

LoadedModel LoadTestModel(const std::string& path, const std::string& device) {
  auto src = formats::OpenWeights(path);
  EXPECT_TRUE(src.ok()) << src.status();
  if (!src.ok()) return {};
  LoadedModel l = LoadTestModel(**src, device);
  l.src = *std::move(src);
  return l;
}

}  // namespace laserd::test_support
