// The generation task and the match rules in a sweep spec: JSON and YAML
// parse to the same spec, SweepConfigFromSpec (what `laserd sweep` and
// `laserd serve` both run) maps them to the engine's MatchOptions, and every
// bad combination is INVALID_ARGUMENT naming the field.
#include <string>

#include "gtest/gtest.h"
#include "proto/spec_io.h"
#include "server/sweep_io.h"

namespace laserd::server {
namespace {

namespace pb = ::laser::v1;

pb::SweepSpec Base(pb::TaskKind task) {
  pb::SweepSpec s;
  s.mutable_dataset()->set_path("data.jsonl");
  s.mutable_rho()->add_values(0.5);
  s.set_task(task);
  return s;
}

std::string Error(const pb::SweepSpec& s) {
  auto h = SweepConfigFromSpec(s);
  EXPECT_FALSE(h.ok());
  if (h.ok()) return "";
  EXPECT_EQ(h.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(h.status().message());
}

TEST(GenerationSpecTest, JsonAndYamlGiveTheSameSpec) {
  const std::string json = R"({"dataset": {"path": "c.jsonl"}, "task": "TASK_KIND_GENERATION",
    "match": "MATCH_RULE_PREFIX", "rho": {"values": [0.5]},
    "generation": {"max_new_tokens": 8, "stop_strings": ["\n", "."], "match_prompt": true}})";
  const std::string yaml =
      "dataset: {path: c.jsonl}\ntask: TASK_KIND_GENERATION\nmatch: MATCH_RULE_PREFIX\n"
      "rho: {values: [0.5]}\ngeneration:\n  maxNewTokens: 8\n  stop_strings: [\"\\n\", \".\"]\n"
      "  match_prompt: true\n";
  auto a = proto::ParseSweepSpecText(json, "spec.json");
  auto b = proto::ParseSweepSpecText(yaml, "spec.yaml");
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(a->SerializeAsString(), b->SerializeAsString());
  auto h = SweepConfigFromSpec(*a);
  ASSERT_TRUE(h.ok()) << h.status();
  const eval::MatchOptions& m = h->config.match;
  EXPECT_EQ(m.rule, eval::MatchRule::kPrefix);
  EXPECT_EQ(m.max_new_tokens, 8);
  EXPECT_EQ(m.stop_strings, (std::vector<std::string>{"\n", "."}));
  EXPECT_TRUE(m.match_prompt);
  EXPECT_EQ(h->config.task, laser::TaskFilter::kCompletion);
}

TEST(GenerationSpecTest, Defaults) {
  auto g = SweepConfigFromSpec(Base(pb::TASK_KIND_GENERATION));
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->config.match.rule, eval::MatchRule::kContains);
  EXPECT_EQ(g->config.match.max_new_tokens, 16);
  EXPECT_FALSE(g->config.match.match_prompt);
  auto c = SweepConfigFromSpec(Base(pb::TASK_KIND_COMPLETION));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->config.match.rule, eval::MatchRule::kGreedy);
  pb::SweepSpec t = Base(pb::TASK_KIND_UNSPECIFIED);
  t.set_match(pb::MATCH_RULE_TOP1_DECODED);
  auto top = SweepConfigFromSpec(t);
  ASSERT_TRUE(top.ok()) << top.status();
  EXPECT_EQ(top->config.match.rule, eval::MatchRule::kTop1Decoded);
}

TEST(GenerationSpecTest, ErrorsNameTheField) {
  pb::SweepSpec s = Base(pb::TASK_KIND_COMPLETION);
  s.set_match(pb::MATCH_RULE_EXACT);
  EXPECT_EQ(Error(s), "spec.match: MATCH_RULE_EXACT needs task TASK_KIND_GENERATION");
  s = Base(pb::TASK_KIND_GENERATION);
  s.set_match(pb::MATCH_RULE_GREEDY);
  EXPECT_EQ(Error(s),
            "spec.match: MATCH_RULE_GREEDY does not apply to TASK_KIND_GENERATION (use EXACT, "
            "PREFIX or CONTAINS)");
  s = Base(pb::TASK_KIND_CHOICE);
  s.set_match(pb::MATCH_RULE_TOP1_DECODED);
  EXPECT_EQ(Error(s),
            "spec.match: MATCH_RULE_TOP1_DECODED needs completion records, but the task is "
            "TASK_KIND_CHOICE");
  s = Base(pb::TASK_KIND_COMPLETION);
  s.mutable_generation()->set_max_new_tokens(4);
  EXPECT_EQ(Error(s), "spec.generation: applies to task TASK_KIND_GENERATION only");
  for (int bad : {1025, -1}) {
    s = Base(pb::TASK_KIND_GENERATION);
    s.mutable_generation()->set_max_new_tokens(bad);
    EXPECT_EQ(Error(s),
              "spec.generation.max_new_tokens: " + std::to_string(bad) + " is not in [1, 1024]");
  }
  s = Base(pb::TASK_KIND_GENERATION);
  s.mutable_generation()->set_max_new_tokens(1024);
  EXPECT_TRUE(SweepConfigFromSpec(s).ok());
  s.mutable_generation()->add_stop_strings("\n");
  s.mutable_generation()->add_stop_strings("");
  EXPECT_EQ(Error(s), "spec.generation.stop_strings[1]: must not be empty");
  s = Base(pb::TASK_KIND_GENERATION);
  for (int i = 0; i < 17; ++i) s.mutable_generation()->add_stop_strings("x");
  EXPECT_EQ(Error(s), "spec.generation.stop_strings: 17 values; the limit is 16");
}

}  // namespace
}  // namespace laserd::server
