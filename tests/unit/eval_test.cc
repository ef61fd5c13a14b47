// engine/eval: dataset parsing, the lm-evaluation-harness tokenization rule on
// a real tokenizer, the validation/test split, batching and metric arithmetic.
#include <cmath>
#include <filesystem>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "engine/eval/dataset.h"
#include "engine/eval/example.h"
#include "engine/eval/metrics.h"
#include "engine/eval/scorer.h"
#include "engine/eval/split.h"
#include "engine/formats/weights.h"
#include "engine/tokenizer/tokenizer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/support/requirements.h"

namespace laserd::eval {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// ---------------------------------------------------------------- datasets

TEST(DatasetTest, ParsesAllLayoutsAndSkipsBlankLines) {
  const std::string text =
      "{\"prompt\": \"The capital of France is\", \"answer\": \" Paris\", \"id\": 7}\n"
      "\n"
      "   \r\n"
      "{\"prompt\": \"Is the sky blue?\", \"choices\": [\" true\", \" false\"], \"label\": 1}\r\n"
      "{\"question\": \"The Eiffel Tower is in\", \"gold-answer\": \"Paris\", \"case_id\": 3}";
  auto ds = ParseDataset(text, "mem.jsonl");
  ASSERT_TRUE(ds.ok()) << ds.status();
  ASSERT_EQ(ds->examples.size(), 3u);
  const Example& a = ds->examples[0];
  EXPECT_EQ(a.index, 0);
  EXPECT_EQ(a.line, 1);
  EXPECT_EQ(a.kind, ExampleKind::kCompletion);
  EXPECT_EQ(a.prompt, "The capital of France is");
  EXPECT_EQ(a.answer, " Paris");
  const Example& b = ds->examples[1];
  EXPECT_EQ(b.index, 1);
  EXPECT_EQ(b.line, 4);
  EXPECT_EQ(b.kind, ExampleKind::kChoice);
  EXPECT_THAT(b.choices, ElementsAre(" true", " false"));
  EXPECT_EQ(b.label, 1);
  const Example& c = ds->examples[2];
  EXPECT_EQ(c.line, 5);
  EXPECT_EQ(c.kind, ExampleKind::kCompletion);
  EXPECT_EQ(c.prompt, "The Eiffel Tower is in");
  EXPECT_EQ(c.answer, "Paris");
  EXPECT_EQ(ds->source, "mem.jsonl");
}

TEST(DatasetTest, SkipsByteOrderMark) {
  auto ds = ParseDataset("\xEF\xBB\xBF{\"prompt\":\"a\",\"answer\":\"b\"}\n", "bom");
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_EQ(ds->examples[0].prompt, "a");
}

TEST(DatasetTest, ReportsEveryBadRecordWithLineAndReason) {
  const std::string text =
      "{\"prompt\": \"ok\", \"answer\": \" fine\"}\n"                          // 1 good
      "{\"prompt\": \"a\", \"answer\": }\n"                                    // 2 invalid JSON
      "{\"prompt\": \"caf\xC3\", \"answer\": \"x\"}\n"                         // 3 bad UTF-8
      "[1, 2]\n"                                                               // 4 not an object
      "{\"answer\": \"x\"}\n"                                                  // 5 no prompt
      "{\"prompt\": \"\", \"answer\": \"x\"}\n"                                // 6 empty prompt
      "{\"prompt\": \"p\", \"answer\": \"\"}\n"                                // 7 empty answer
      "{\"prompt\": 3, \"answer\": \"x\"}\n"                                   // 8 wrong type
      "{\"prompt\": \"p\"}\n"                                                  // 9 no answer
      "{\"prompt\": \"p\", \"choices\": [\"a\"], \"label\": 0}\n"              // 10 one choice
      "{\"prompt\": \"p\", \"choices\": [\"a\", \"b\"], \"label\": 2}\n"       // 11 label range
      "{\"prompt\": \"p\", \"choices\": [\"a\", \"b\"], \"label\": -1}\n"      // 12 negative
      "{\"prompt\": \"p\", \"choices\": [\"a\", \"b\"]}\n"                     // 13 no label
      "{\"prompt\": \"p\", \"choices\": [\"a\", \"b\"], \"label\": 0.5}\n"     // 14 float label
      "{\"prompt\": \"p\", \"choices\": [\"a\", 5], \"label\": 0}\n"           // 15 choice type
      "{\"prompt\": \"p\", \"choices\": \"ab\", \"label\": 0}\n"               // 16 choices type
      "{\"prompt\": \"p\", \"choices\": [\"a\", \"\"], \"label\": 0}\n"        // 17 empty choice
      "{\"prompt\": \"p\", \"answer\": \"x\", \"choices\": [\"a\", \"b\"]}\n"  // 18 both
      "{\"question\": \"q\"}\n"                                                // 19 no gold-answer
      "{\"question\": \"q\", \"gold-answer\": [\"x\"]}\n"                      // 20 wrong type
      "{\"prompt\": \"p\", \"choices\": [\"a\", \"b\"], \"label\": true}\n"    // 21 bool label
      "{\"prompt\": \"p\", \"choices\": [\"a\", \"b\"], \"label\": 18446744073709551615}\n";  // 22
  ParseResult r = ParseDatasetLines(text, "bad.jsonl");
  ASSERT_EQ(r.dataset.examples.size(), 1u);
  EXPECT_EQ(r.dataset.examples[0].line, 1);
  std::vector<int64_t> lines;
  for (const RecordError& e : r.errors) lines.push_back(e.line);
  std::vector<int64_t> want;
  for (int i = 2; i <= 22; ++i) want.push_back(i);
  ASSERT_EQ(lines, want);
  auto reason = [&](int line) { return r.errors[line - 2].reason; };
  EXPECT_THAT(reason(2), HasSubstr("invalid JSON"));
  EXPECT_EQ(reason(3), "invalid UTF-8 at byte 16 of the line");
  EXPECT_EQ(reason(4), "record must be a JSON object, got array");
  EXPECT_THAT(reason(5), HasSubstr("missing field 'prompt'"));
  EXPECT_EQ(reason(6), "field 'prompt' is empty");
  EXPECT_EQ(reason(7), "field 'answer' is empty");
  EXPECT_EQ(reason(8), "field 'prompt' must be a string, got number");
  EXPECT_EQ(reason(9), "missing field 'answer' (or 'choices' and 'label')");
  EXPECT_EQ(reason(10), "field 'choices' must have at least 2 entries, has 1");
  EXPECT_EQ(reason(11), "field 'label' is 2, out of range for 2 choices (0..1)");
  EXPECT_EQ(reason(12), "field 'label' is -1, out of range for 2 choices (0..1)");
  EXPECT_EQ(reason(13), "missing field 'label'");
  EXPECT_EQ(reason(14), "field 'label' must be an integer, got a non-integer number");
  EXPECT_EQ(reason(15), "field 'choices[1]' must be a string, got number");
  EXPECT_EQ(reason(16), "field 'choices' must be an array of strings, got string");
  EXPECT_EQ(reason(17), "field 'choices[1]' is empty");
  EXPECT_THAT(reason(18), HasSubstr("both 'answer' and 'choices'"));
  EXPECT_EQ(reason(19), "missing field 'gold-answer'");
  EXPECT_EQ(reason(20), "field 'gold-answer' must be a string, got array");
  EXPECT_EQ(reason(21), "field 'label' must be an integer, got boolean");
  EXPECT_EQ(reason(22), "field 'label' is 18446744073709551615, out of range for 2 choices (0..1)");

  auto st = ParseDataset(text, "bad.jsonl");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.status().message(), HasSubstr("dataset bad.jsonl: 21 bad records: line 2: "));
  EXPECT_THAT(st.status().message(), HasSubstr("; line 21: field 'label' must be an integer"));
  EXPECT_THAT(st.status().message(), HasSubstr("; and 1 more"));  // 20 shown
}

TEST(DatasetTest, InvalidUtf8Forms) {
  // Overlong encoding, surrogate, above U+10FFFF, truncated sequence.
  for (const std::string bad : {"\xC0\xAF", "\xED\xA0\x80", "\xF4\x90\x80\x80", "\xE2\x82"}) {
    ParseResult r = ParseDatasetLines("{\"prompt\": \"" + bad + "\", \"answer\": \"x\"}", "u");
    ASSERT_EQ(r.errors.size(), 1u);
    EXPECT_EQ(r.errors[0].reason, "invalid UTF-8 at byte 13 of the line");
  }
  // Well-formed multi-byte text is fine.
  auto ok = ParseDataset("{\"prompt\": \"Ελλάδα 日本 🙂\", \"answer\": \" x\"}", "u");
  EXPECT_TRUE(ok.ok()) << ok.status();
}

TEST(DatasetTest, EmptyDatasetIsAnError) {
  for (const std::string text : {"", "\n\n  \n", "\r\n"}) {
    auto ds = ParseDataset(text, "empty.jsonl");
    ASSERT_FALSE(ds.ok());
    EXPECT_EQ(ds.status().message(), "dataset empty.jsonl has no records");
  }
}

TEST(DatasetTest, LoadDatasetMissingFile) {
  auto ds = LoadDataset("/nonexistent/dir/data.jsonl");
  EXPECT_EQ(ds.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(ds.status().message(), HasSubstr("/nonexistent/dir/data.jsonl"));
}

// ---------------------------------------------------------------- tokenization

TEST(ExampleTest, MoveTrailingWhitespace) {
  EXPECT_EQ(MoveTrailingWhitespace("Q: capital?\nA: ", "Paris"),
            std::make_pair(std::string("Q: capital?\nA:"), std::string(" Paris")));
  EXPECT_EQ(MoveTrailingWhitespace("x \t\n\r\v\f", "y"),
            std::make_pair(std::string("x"), std::string(" \t\n\r\v\f"
                                                         "y")));
  EXPECT_EQ(MoveTrailingWhitespace("no space", " z"),
            std::make_pair(std::string("no space"), std::string(" z")));
  // Python's str.isspace covers NBSP, ideographic space, U+2028, U+001F.
  EXPECT_EQ(MoveTrailingWhitespace("a\xC2\xA0\xE3\x80\x80\xE2\x80\xA8\x1F", "b"),
            std::make_pair(std::string("a"), std::string("\xC2\xA0\xE3\x80\x80\xE2\x80\xA8\x1F"
                                                         "b")));
  // Non-space multi-byte characters stay (é, zero-width space U+200B is not isspace).
  EXPECT_EQ(MoveTrailingWhitespace("caf\xC3\xA9", "!"),
            std::make_pair(std::string("caf\xC3\xA9"), std::string("!")));
  EXPECT_EQ(MoveTrailingWhitespace("a\xE2\x80\x8B", "b"),
            std::make_pair(std::string("a\xE2\x80\x8B"), std::string("b")));
  EXPECT_EQ(MoveTrailingWhitespace("   ", "b"),
            std::make_pair(std::string(""), std::string("   b")));
}

// The SmolLM2 GGUF's tokenizer (gpt2-type vocabulary, no BOS). The expected ids
// come from the reference tokenizer on these plain-English strings.
const tokenizer::Tokenizer* SmolTokenizer() {
  static std::unique_ptr<tokenizer::Tokenizer> tok = [] {
    std::unique_ptr<tokenizer::Tokenizer> t;
    const std::string path =
        std::string(LASERD_DATA_DIR) + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
    if (!std::filesystem::exists(path)) return t;
    auto src = formats::OpenGguf(path);
    if (!src.ok()) {
      ADD_FAILURE() << src.status();
      return t;
    }
    auto loaded = tokenizer::LoadGgufTokenizer((*src)->metadata());
    if (!loaded.ok()) {
      ADD_FAILURE() << loaded.status();
      return t;
    }
    return *std::move(loaded);
  }();
  return tok.get();
}

#define REQUIRE_SMOL_TOKENIZER(tok)                                                                \
  const tokenizer::Tokenizer* tok = SmolTokenizer();                                               \
  if (tok == nullptr) {                                                                            \
    LASERD_SKIP_OR_FAIL_IN_CI("SmolLM2 GGUF not found under " LASERD_DATA_DIR                      \
                              "/models (run scripts/fetch_model.sh); tokenization tests skipped"); \
  }

TEST(ExampleTest, LmEvalRuleOnSmolLM2) {
  REQUIRE_SMOL_TOKENIZER(tok);
  ASSERT_FALSE(tok->adds_bos());
  // Plain case: the answer's tokens follow the prompt's.
  auto seq = TokenizePair(*tok, "The capital of France is", " Paris", 0, "line 1");
  ASSERT_TRUE(seq.ok()) << seq.status();
  EXPECT_THAT(seq->tokens, ElementsAre(504, 3575, 282, 4649, 314, 7042));
  EXPECT_EQ(seq->answer_start, 5);
  EXPECT_EQ(seq->answer_tokens(), 1);
  EXPECT_FALSE(seq->boundary_mismatch);
  // Trailing whitespace of the prompt moves to the answer: same tokens.
  auto moved = TokenizePair(*tok, "The capital of France is ", "Paris", 0, "line 1");
  ASSERT_TRUE(moved.ok()) << moved.status();
  EXPECT_EQ(moved->tokens, seq->tokens);
  EXPECT_EQ(moved->answer_start, 5);
  // Multi-token answer with a newline in the prompt.
  auto qa = TokenizePair(*tok, "Q: What is the capital of Japan?\nA:", " Tokyo", 0, "line 1");
  ASSERT_TRUE(qa.ok()) << qa.status();
  EXPECT_THAT(qa->tokens,
              ElementsAre(65, 42, 1812, 314, 260, 3575, 282, 3085, 47, 198, 49, 42, 19081));
  EXPECT_EQ(qa->answer_start, 12);
  // A merge across the boundary: "hello" = [28120], "helloworld" = [2797, 683, 1886].
  // The rule still takes whole[len(prompt):] = [683, 1886] as the answer, after the
  // prompt's own tokens (lm-eval's input), and flags the mismatch.
  auto merged = TokenizePair(*tok, "hello", "world", 0, "line 1");
  ASSERT_TRUE(merged.ok()) << merged.status();
  EXPECT_THAT(merged->tokens, ElementsAre(28120, 683, 1886));
  EXPECT_EQ(merged->answer_start, 1);
  EXPECT_TRUE(merged->boundary_mismatch);
  // "hel" = [2797] is a prefix of "helloworld": no mismatch.
  auto prefix = TokenizePair(*tok, "hel", "loworld", 0, "line 1");
  ASSERT_TRUE(prefix.ok()) << prefix.status();
  EXPECT_EQ(prefix->answer_start, 1);
  EXPECT_FALSE(prefix->boundary_mismatch);
}

TEST(ExampleTest, ZeroAnswerTokensIsAnError) {
  REQUIRE_SMOL_TOKENIZER(tok);
  // "The capital of Fr" = [504, 3575, 282, 2133]; "The capital of France" = [504, 3575, 282, 4649]:
  // nothing is left past the prompt's 4 tokens.
  auto seq = TokenizePair(*tok, "The capital of Fr", "ance", 0, "line 9");
  ASSERT_FALSE(seq.ok());
  EXPECT_EQ(seq.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(seq.status().message(),
            "line 9: the answer has no tokens past the prompt's 4 (prompt + answer encodes to 4 "
            "tokens)");
  // With more text the answer has tokens again, past a mismatching boundary.
  auto more = TokenizePair(*tok, "The capital of Fr", "ance is", 0, "line 9");
  ASSERT_TRUE(more.ok()) << more.status();
  EXPECT_THAT(more->tokens, ElementsAre(504, 3575, 282, 2133, 314));
  EXPECT_EQ(more->answer_start, 4);
  EXPECT_TRUE(more->boundary_mismatch);
}

TEST(ExampleTest, LongerThanContextIsAnErrorNamingTheLine) {
  REQUIRE_SMOL_TOKENIZER(tok);
  // Line 1 is 13 tokens, line 3's choices are 6 tokens each.
  auto ds = ParseDataset(
      "{\"prompt\": \"Q: What is the capital of Japan?\\nA:\", \"answer\": \" Tokyo\"}\n\n"
      "{\"prompt\": \"Is the sky blue?\", \"choices\": [\" true\", \" false\"], \"label\": 0}\n",
      "ctx.jsonl");
  ASSERT_TRUE(ds.ok()) << ds.status();
  auto ok = TokenizeDataset(*tok, *ds, 13);  // fits exactly
  ASSERT_TRUE(ok.ok()) << ok.status();
  ASSERT_EQ(ok->size(), 2u);
  EXPECT_EQ(ok->at(0).seqs[0].tokens.size(), 13u);
  auto st = TokenizeDataset(*tok, *ds, 12);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(st.status().message()),
            "dataset ctx.jsonl: 1 example cannot be scored: line 1: prompt + answer is 13 tokens, "
            "longer than the model's context of 12 tokens (examples are never truncated)");
  auto st2 = TokenizeDataset(*tok, *ds, 5);
  ASSERT_FALSE(st2.ok());
  EXPECT_THAT(std::string(st2.status().message()),
              HasSubstr("dataset ctx.jsonl: 2 examples cannot be scored: line 1: "));
  EXPECT_THAT(std::string(st2.status().message()),
              HasSubstr("; line 3, choice 0: prompt + answer is 6 tokens"));
}

TEST(ExampleTest, ChoiceExampleHasOneSequencePerChoice) {
  REQUIRE_SMOL_TOKENIZER(tok);
  Example ex;
  ex.index = 4;
  ex.line = 12;
  ex.kind = ExampleKind::kChoice;
  ex.prompt = "Is the sky blue?";
  ex.choices = {" true", " false"};
  ex.label = 0;
  auto t = TokenizeExample(*tok, ex, 0);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->index, 4);
  EXPECT_EQ(t->line, 12);
  EXPECT_EQ(t->label, 0);
  ASSERT_EQ(t->seqs.size(), 2u);
  EXPECT_THAT(t->seqs[0].tokens, ElementsAre(4182, 260, 6376, 4461, 47, 2629));
  EXPECT_THAT(t->seqs[1].tokens, ElementsAre(4182, 260, 6376, 4461, 47, 7065));
  EXPECT_EQ(t->seqs[0].answer_start, 5);
  EXPECT_EQ(t->seqs[1].answer_start, 5);
}

TEST(ExampleTest, WhitespaceOnlyPromptWithoutBosIsAnError) {
  REQUIRE_SMOL_TOKENIZER(tok);
  auto seq = TokenizePair(*tok, "  ", "Paris", 0, "line 2");
  ASSERT_FALSE(seq.ok());
  EXPECT_THAT(seq.status().message(), HasSubstr("line 2: the prompt encodes to no tokens"));
}

// A tokenizer that adds BOS by default (Llama-2 style SentencePiece BPE, committed
// fixture). Expected ids from `tokenizers` encode(add_special_tokens=True).
TEST(ExampleTest, LmEvalRuleWithBos) {
  const std::string path =
      std::string(LASERD_SOURCE_DIR) + "/tests/fixtures/tokenizer/llama2_spm.json";
  ASSERT_TRUE(std::filesystem::exists(path)) << path << " (committed) not found";
  auto tok = tokenizer::LoadTokenizerJson(path);
  ASSERT_TRUE(tok.ok()) << tok.status();
  ASSERT_TRUE((*tok)->adds_bos());
  auto seq = TokenizePair(**tok, "The capital of France is", " Paris", 0, "line 1");
  ASSERT_TRUE(seq.ok()) << seq.status();
  EXPECT_THAT(seq->tokens, ElementsAre(1, 566, 1066, 402, 504, 509, 447, 449, 982));
  EXPECT_EQ(seq->answer_start, 8);  // BOS + 7 prompt tokens
  EXPECT_FALSE(seq->boundary_mismatch);
  // Trailing space moves to the answer.
  auto qa = TokenizePair(**tok, "Q: capital?\nA: ", "Paris", 0, "line 1");
  ASSERT_TRUE(qa.ok()) << qa.status();
  EXPECT_THAT(qa->tokens, ElementsAre(1, 369, 84, 285, 1066, 290, 13, 292, 285, 982));
  EXPECT_EQ(qa->answer_start, 9);
  // "hello" = [1, 433, 1034], "helloworld" = [1, 433, 922, 544, 384, 529]: the
  // answer is whole[3:] = [544, 384, 529] after the prompt's own tokens.
  auto merged = TokenizePair(**tok, "hello", "world", 0, "line 1");
  ASSERT_TRUE(merged.ok()) << merged.status();
  EXPECT_THAT(merged->tokens, ElementsAre(1, 433, 1034, 544, 384, 529));
  EXPECT_EQ(merged->answer_start, 3);
  EXPECT_TRUE(merged->boundary_mismatch);
}

// ---------------------------------------------------------------- split

TEST(SplitTest, ValidationCount) {
  EXPECT_EQ(ValidationCount(0, 0.2), 0);
  EXPECT_EQ(ValidationCount(1, 0.2), 0);
  EXPECT_EQ(ValidationCount(2, 0.2), 1);  // floor(0.4) = 0, at least 1
  EXPECT_EQ(ValidationCount(4, 0.2), 1);
  EXPECT_EQ(ValidationCount(5, 0.2), 1);
  EXPECT_EQ(ValidationCount(9, 0.2), 1);
  EXPECT_EQ(ValidationCount(10, 0.2), 2);
  EXPECT_EQ(ValidationCount(14, 0.2), 2);
  EXPECT_EQ(ValidationCount(15, 0.2), 3);
  EXPECT_EQ(ValidationCount(250, 0.2), 50);
  EXPECT_EQ(ValidationCount(251, 0.2), 50);
  EXPECT_EQ(ValidationCount(10, 0.3), 3);     // 0.3 * 10 = 2.9999999999999996 in doubles
  EXPECT_EQ(ValidationCount(100, 0.57), 57);  // 56.99999999999999 in doubles
  EXPECT_EQ(ValidationCount(3, 0.99), 2);     // at most n - 1
}

TEST(SplitTest, FirstIsFileOrder) {
  auto s = MakeSplit(11, {});
  ASSERT_TRUE(s.ok());
  EXPECT_THAT(s->validation, ElementsAre(0, 1));
  EXPECT_THAT(s->test, ElementsAre(2, 3, 4, 5, 6, 7, 8, 9, 10));
  auto one = MakeSplit(1, {});
  ASSERT_TRUE(one.ok());
  EXPECT_TRUE(one->validation.empty());
  EXPECT_THAT(one->test, ElementsAre(0));
}

TEST(SplitTest, RejectsBadFraction) {
  for (double f : {0.0, 1.0, -0.1, 1.5, std::nan("")}) {
    SplitOptions o;
    o.val_fraction = f;
    EXPECT_EQ(MakeSplit(10, o).status().code(), absl::StatusCode::kInvalidArgument) << f;
  }
  EXPECT_EQ(MakeSplit(0, {}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseSplitMode("random").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(*ParseSplitMode("shuffle"), SplitMode::kShuffle);
}

// Reference permutations from scripts/seeded_split.py, an independent Python
// implementation of mt19937_64 and of the documented Fisher–Yates (docs/metrics.md).
TEST(SplitTest, SeededPermutationMatchesPythonReference) {
  std::mt19937_64 check;  // the standard fixes mt19937_64(5489)'s 10000th output
  check.discard(9999);
  ASSERT_EQ(check(), 9981545732273789042ull);
  EXPECT_THAT(SeededPermutation(10, 0), ElementsAre(7, 2, 0, 8, 3, 9, 6, 1, 5, 4));
  EXPECT_THAT(SeededPermutation(10, 1), ElementsAre(1, 7, 3, 9, 4, 0, 5, 2, 6, 8));
  EXPECT_THAT(SeededPermutation(10, 42), ElementsAre(1, 7, 9, 0, 3, 8, 4, 2, 5, 6));
  EXPECT_THAT(SeededPermutation(10, 1234567), ElementsAre(3, 0, 8, 4, 1, 7, 9, 5, 6, 2));
  EXPECT_THAT(SeededPermutation(20, 2024),
              ElementsAre(13, 4, 6, 19, 16, 9, 10, 1, 11, 0, 7, 2, 17, 8, 15, 12, 3, 18, 5, 14));
  EXPECT_TRUE(SeededPermutation(0, 3).empty());
  EXPECT_THAT(SeededPermutation(1, 3), ElementsAre(0));
}

TEST(SplitTest, ShuffleSplitIsSeededAndSorted) {
  SplitOptions o;
  o.mode = SplitMode::kShuffle;
  o.seed = 42;
  o.val_fraction = 0.3;
  auto s = MakeSplit(10, o);
  ASSERT_TRUE(s.ok());
  // Permutation 1, 7, 9, 0, 3, 8, 4, 2, 5, 6: the first 3 are validation.
  EXPECT_THAT(s->validation, ElementsAre(1, 7, 9));
  EXPECT_THAT(s->test, ElementsAre(0, 2, 3, 4, 5, 6, 8));
  auto again = MakeSplit(10, o);
  EXPECT_EQ(again->validation, s->validation);
}

// ---------------------------------------------------------------- batching

TEST(ScorerTest, PlanBatchesPacksLongestFirstWithinBudget) {
  //                 idx: 0  1  2  3  4  5
  std::vector<int64_t> len = {5, 9, 3, 9, 12, 2};
  auto b = PlanBatches(len, 12);
  // Sorted: 4(12) 1(9) 3(9) 0(5) 2(3) 5(2).
  ASSERT_EQ(b.size(), 4u);
  EXPECT_THAT(b[0], ElementsAre(4));
  EXPECT_THAT(b[1], ElementsAre(1));
  EXPECT_THAT(b[2], ElementsAre(3));
  EXPECT_THAT(b[3], ElementsAre(0, 2, 5));
  // A sequence longer than the budget is scored alone.
  auto big = PlanBatches({30, 4, 4}, 8);
  ASSERT_EQ(big.size(), 2u);
  EXPECT_THAT(big[0], ElementsAre(0));
  EXPECT_THAT(big[1], ElementsAre(1, 2));
  EXPECT_TRUE(PlanBatches({}, 8).empty());
}

// ---------------------------------------------------------------- metrics

TokenizedSequence Seq(std::vector<int32_t> tokens, int64_t answer_start) {
  TokenizedSequence s;
  s.tokens = std::move(tokens);
  s.answer_start = answer_start;
  return s;
}

TEST(MetricsTest, CompletionExample) {
  TokenizedExample ex;
  ex.index = 3;
  ex.line = 7;
  ex.seqs = {Seq({1, 2, 3, 40, 41}, 3)};
  std::vector<model::TokenScore> sc = {{-0.5f, 40, 0}, {-1.25f, 41, 0}};
  auto r = ScoreExample(ex, {&sc}, {1, 5, 10});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->index, 3);
  EXPECT_EQ(r->line, 7);
  EXPECT_DOUBLE_EQ(r->logprob, -1.75);
  EXPECT_EQ(r->answer_tokens, 2);
  EXPECT_EQ(r->prompt_tokens, 3);
  EXPECT_TRUE(r->greedy_match);
  EXPECT_TRUE(r->correct);
  EXPECT_THAT(r->topk_hits, ElementsAre(true, true, true));
  EXPECT_THAT(r->answer_ids, ElementsAre(40, 41));
  EXPECT_EQ(r->chosen, -1);

  // First token right but the second is not the argmax: top-1 hit, no greedy match.
  std::vector<model::TokenScore> miss = {{-0.5f, 40, 0}, {-3.0f, 7, 2}};
  auto m = ScoreExample(ex, {&miss}, {1, 5, 10});
  ASSERT_TRUE(m.ok());
  EXPECT_FALSE(m->greedy_match);
  EXPECT_FALSE(m->correct);
  EXPECT_THAT(m->topk_hits, ElementsAre(true, true, true));
  EXPECT_THAT(m->greedy_ids, ElementsAre(40, 7));

  // First token with 5 entries above it: in the top 10 only (hit iff greater < k).
  std::vector<model::TokenScore> rank5 = {{-4.0f, 9, 5}, {-0.1f, 41, 0}};
  auto k = ScoreExample(ex, {&rank5}, {1, 5, 10});
  ASSERT_TRUE(k.ok());
  EXPECT_THAT(k->topk_hits, ElementsAre(false, false, true));
  EXPECT_EQ(k->first_greater, 5);

  // Score count mismatch is an internal error, not a crash.
  std::vector<model::TokenScore> short_sc = {{-0.5f, 40, 0}};
  EXPECT_EQ(ScoreExample(ex, {&short_sc}, {1}).status().code(), absl::StatusCode::kInternal);
}

TEST(MetricsTest, ChoiceExampleUsesGoldChoiceAndBreaksTiesLow) {
  TokenizedExample ex;
  ex.kind = ExampleKind::kChoice;
  ex.label = 2;
  ex.seqs = {Seq({1, 2, 10}, 2), Seq({1, 2, 11, 12}, 2), Seq({1, 2, 13}, 2)};
  std::vector<model::TokenScore> c0 = {{-2.0f, 10, 0}};
  std::vector<model::TokenScore> c1 = {{-0.5f, 11, 0}, {-1.5f, 5, 3}};
  std::vector<model::TokenScore> c2 = {{-2.0f, 10, 7}};
  auto r = ScoreExample(ex, {&c0, &c1, &c2}, {1, 5, 10});
  ASSERT_TRUE(r.ok()) << r.status();
  // Totals: -2, -2, -2 -> tie -> lowest index 0.
  EXPECT_THAT(r->choice_logprobs, ElementsAre(-2.0, -2.0, -2.0));
  EXPECT_THAT(r->choice_tokens, ElementsAre(1, 2, 1));
  EXPECT_EQ(r->chosen, 0);
  EXPECT_FALSE(r->correct);
  // The example's values are the gold choice's (index 2).
  EXPECT_DOUBLE_EQ(r->logprob, -2.0);
  EXPECT_EQ(r->answer_tokens, 1);
  EXPECT_FALSE(r->greedy_match);
  EXPECT_EQ(r->first_greater, 7);
  EXPECT_THAT(r->topk_hits, ElementsAre(false, false, true));

  c2[0].logprob = -1.0f;
  auto won = ScoreExample(ex, {&c0, &c1, &c2}, {1, 5, 10});
  ASSERT_TRUE(won.ok());
  EXPECT_EQ(won->chosen, 2);
  EXPECT_TRUE(won->correct);
}

TEST(MetricsTest, AggregateArithmetic) {
  auto make = [](bool correct, double lp, int64_t n, std::vector<bool> hits) {
    ExampleResult r;
    r.correct = correct;
    r.logprob = lp;
    r.answer_tokens = n;
    r.topk_hits = std::move(hits);
    return r;
  };
  std::vector<ExampleResult> rs = {
      make(true, -1.0, 1, {true, true}),     // loss 1.0
      make(false, -6.0, 3, {false, true}),   // loss 2.0
      make(true, -2.0, 4, {true, true}),     // loss 0.5
      make(false, -9.0, 2, {false, false}),  // loss 4.5
  };
  Aggregate all = ComputeAggregate(rs, {1, 5});
  EXPECT_EQ(all.count, 4);
  EXPECT_DOUBLE_EQ(all.accuracy, 50.0);
  EXPECT_DOUBLE_EQ(all.log_loss, 2.0);
  EXPECT_DOUBLE_EQ(all.mean_logprob, -4.5);
  EXPECT_THAT(all.topk_accuracy, ElementsAre(50.0, 75.0));
  std::vector<int64_t> sub = {1, 3};
  Aggregate s = ComputeAggregate(rs, {1, 5}, &sub);
  EXPECT_EQ(s.count, 2);
  EXPECT_DOUBLE_EQ(s.accuracy, 0.0);
  EXPECT_DOUBLE_EQ(s.log_loss, 3.25);
  EXPECT_THAT(s.topk_accuracy, ElementsAre(0.0, 50.0));
  std::vector<int64_t> none;
  Aggregate e = ComputeAggregate(rs, {1, 5}, &none);
  EXPECT_EQ(e.count, 0);
  EXPECT_TRUE(std::isnan(e.accuracy));
  nlohmann::json j = AggregateJson(e);
  EXPECT_TRUE(j["accuracy"].is_null());
  nlohmann::json ja = AggregateJson(all);
  EXPECT_EQ(ja["topk_accuracy"]["top5"], 75.0);
  EXPECT_EQ(ja["count"], 4);
}

TEST(MetricsTest, ParseTopK) {
  EXPECT_THAT(*ParseTopK("1,5,10"), ElementsAre(1, 5, 10));
  EXPECT_THAT(*ParseTopK("10, 1"), ElementsAre(1, 10));
  EXPECT_FALSE(ParseTopK("0").ok());
  EXPECT_FALSE(ParseTopK("1,,5").ok());
  EXPECT_FALSE(ParseTopK("1,1").ok());
  EXPECT_FALSE(ParseTopK("a").ok());
}

TEST(MetricsTest, PerExampleJsonl) {
  TokenizedExample ex;
  ex.index = 0;
  ex.line = 1;
  ex.kind = ExampleKind::kChoice;
  ex.label = 1;
  ex.seqs = {Seq({1, 10}, 1), Seq({1, 11}, 1)};
  std::vector<model::TokenScore> a = {{-3.0f, 11, 1}}, b = {{-0.25f, 11, 0}};
  auto r0 = ScoreExample(ex, {&a, &b}, {1, 5});
  ASSERT_TRUE(r0.ok());
  ExampleResult r1 = *r0;
  r1.index = 1;
  r1.line = 2;
  Split split{{0}, {1}};
  std::ostringstream out;
  ASSERT_TRUE(WritePerExampleJsonl({*r0, r1}, {1, 5}, split, out).ok());
  std::istringstream in(out.str());
  std::string l0, l1, extra;
  ASSERT_TRUE(std::getline(in, l0));
  ASSERT_TRUE(std::getline(in, l1));
  EXPECT_FALSE(std::getline(in, extra));
  auto j0 = nlohmann::json::parse(l0);
  EXPECT_EQ(j0["split"], "validation");
  EXPECT_EQ(j0["kind"], "choice");
  EXPECT_EQ(j0["chosen"], 1);
  EXPECT_EQ(j0["label"], 1);
  EXPECT_EQ(j0["correct"], true);
  EXPECT_EQ(j0["logprob"], -0.25);
  EXPECT_EQ(j0["topk"]["top1"], true);
  EXPECT_EQ(j0["answer_ids"], nlohmann::json::array({11}));
  EXPECT_EQ(j0["choice_logprobs"], nlohmann::json::array({-3.0, -0.25}));
  EXPECT_EQ(nlohmann::json::parse(l1)["split"], "test");
  EXPECT_EQ(nlohmann::json::parse(l1)["line"], 2);
}

}  // namespace
}  // namespace laserd::eval
