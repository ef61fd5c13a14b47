// The answer-match rules and the paper's word F1 (engine/eval/match.h).
#include "engine/eval/match.h"

#include <gtest/gtest.h>

namespace laserd::eval {
namespace {

TEST(MatchTest, StripAndLowerFollowPython) {
  EXPECT_EQ(PyStrip(" \t\n Paris \u00a0\u3000"), "Paris");
  EXPECT_EQ(PyStrip("   "), "");
  EXPECT_EQ(PyStrip("x"), "x");
  EXPECT_EQ(PyLower("PARIS Ünïcode ΣΑΣ"), "paris ünïcode σας");  // final sigma as Python
  EXPECT_EQ(PyLower("\u0130"), "i\u0307");                       // full mapping
  EXPECT_EQ(NormalizeAnswer("  Washington, D.C.\n"), "washington, d.c.");
}

TEST(MatchTest, Rules) {
  auto n = [](const char* s) { return NormalizeAnswer(s); };
  EXPECT_TRUE(TextMatches(MatchRule::kExact, n(" Paris "), n("paris")));
  EXPECT_FALSE(TextMatches(MatchRule::kExact, n(" Paris."), n("paris")));
  EXPECT_TRUE(TextMatches(MatchRule::kPrefix, n(" Paris. It is"), n(" Paris")));
  EXPECT_FALSE(TextMatches(MatchRule::kPrefix, n(" It is Paris"), n(" Paris")));
  EXPECT_TRUE(TextMatches(MatchRule::kContains, n(" It is Paris."), n(" PARIS")));
  EXPECT_FALSE(TextMatches(MatchRule::kContains, n(" It is Lyon."), n(" Paris")));
  EXPECT_EQ(ParseMatchRule("contains").value(), MatchRule::kContains);
  EXPECT_EQ(ParseMatchRule("top1_decoded").value(), MatchRule::kTop1Decoded);
  EXPECT_FALSE(ParseMatchRule("fuzzy").ok());
  EXPECT_TRUE(IsGenerationRule(MatchRule::kPrefix));
  EXPECT_FALSE(IsGenerationRule(MatchRule::kTop1Decoded));
}

// Token lists as nltk.word_tokenize gives them for single sentences.
TEST(MatchTest, WordTokensFollowTreebankRules) {
  using V = std::vector<std::string>;
  EXPECT_EQ(WordTokens("The capital is Paris."), (V{"The", "capital", "is", "Paris", "."}));
  EXPECT_EQ(WordTokens("Don't stop, it's \"fine\"!"),
            (V{"Do", "n't", "stop", ",", "it", "'s", "``", "fine", "''", "!"}));
  EXPECT_EQ(WordTokens("I cannot (really) say: 3,000 km?"),
            (V{"I", "can", "not", "(", "really", ")", "say", ":", "3,000", "km", "?"}));
  EXPECT_EQ(WordTokens("Washington, D.C."), (V{"Washington", ",", "D.C", "."}));
  EXPECT_EQ(WordTokens("they'll go -- now..."), (V{"they", "'ll", "go", "--", "now", "..."}));
  EXPECT_EQ(WordTokens(""), V{});
}

TEST(MatchTest, F1AsThePaperComputesIt) {
  // Identical bags: 1.
  F1PR a = WordF1(" Paris", "paris");
  EXPECT_DOUBLE_EQ(a.f1, 1.0);
  EXPECT_DOUBLE_EQ(a.precision, 1.0);
  EXPECT_DOUBLE_EQ(a.recall, 1.0);
  // Generation {it, is, paris, .} vs answer {paris}: p = 1/4, r = 1, and
  // p + r >= 1 so f1 = 2pr/(p+r) = 0.4.
  F1PR b = WordF1(" It is Paris.", "Paris");
  EXPECT_DOUBLE_EQ(b.precision, 0.25);
  EXPECT_DOUBLE_EQ(b.recall, 1.0);
  EXPECT_DOUBLE_EQ(b.f1, 0.4);
  // p + r < 1: the paper divides by max(1, p + r) = 1, so f1 = 2pr.
  // {the, city, of, new, york, is, big} vs {new, delhi, india, capital}: both = {new}:
  // p = 1/7, r = 1/4.
  F1PR c = WordF1("the city of New York is big", "New Delhi India capital");
  EXPECT_DOUBLE_EQ(c.precision, 1.0 / 7);
  EXPECT_DOUBLE_EQ(c.recall, 0.25);
  EXPECT_DOUBLE_EQ(c.f1, 2 * (1.0 / 7) * 0.25);
  // Repeated words count once (sets); nothing in common: 0.
  F1PR d = WordF1("Lyon Lyon Lyon", "Paris");
  EXPECT_DOUBLE_EQ(d.f1, 0.0);
  EXPECT_DOUBLE_EQ(d.precision, 0.0);
  // Empty generation: precision 0 / max(1, 0) = 0.
  EXPECT_DOUBLE_EQ(WordF1("", "Paris").precision, 0.0);
}

}  // namespace
}  // namespace laserd::eval
