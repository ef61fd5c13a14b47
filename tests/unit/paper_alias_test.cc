// PaperAlias is the inverse of CanonicalMatrixType on the paper's aliases.
#include <gtest/gtest.h>

#include "engine/laser/rank.h"
#include "engine/model/architecture.h"

namespace laserd::laser {
namespace {

TEST(PaperAlias, InvertsCanonicalMatrixType) {
  for (const std::string& type : model::CanonicalMatrixTypes()) {
    const std::string alias = PaperAlias(type);
    ASSERT_FALSE(alias.empty()) << type;
    EXPECT_NE(alias, type);
    auto back = CanonicalMatrixType(alias);
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(*back, type);
  }
  EXPECT_EQ(PaperAlias("mlp.in"), "fc_in");
  EXPECT_EQ(PaperAlias("attn.o"), "out_proj");
  EXPECT_EQ(PaperAlias("fc_in"), "");
  EXPECT_EQ(PaperAlias("mlp"), "");
}

}  // namespace
}  // namespace laserd::laser
