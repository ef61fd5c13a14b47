// laserctl's pure parts: spec from flags, exit codes, result output, the watch
// cursor, best-so-far, progress text, and merging shard files.
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "client/laserctl_core.h"
#include "proto/spec_io.h"

namespace laserd::client {
namespace {

namespace pb = ::laser::v1;

pb::Result MakeResult(int64_t index, int64_t plan, const std::string& type, int layer, double rho,
                      double val_acc, double val_loss) {
  pb::Result r;
  r.set_job_id("sweep-0123456789abcdef");
  r.set_index(index);
  r.set_plan_index(plan);
  r.set_kind(pb::RESULT_KIND_SINGLE);
  auto* iv = r.mutable_intervention();
  iv->set_matrix_type(type);
  iv->set_layer(layer);
  iv->set_rho(rho);
  iv->set_rank_source(pb::RANK_SOURCE_RHO);
  iv->set_rank(static_cast<int64_t>(64 * rho));
  iv->set_max_rank(64);
  iv->set_rows(128);
  iv->set_cols(64);
  iv->set_relative_error(0.5);
  iv->set_svd_method(pb::SVD_METHOD_EXACT);
  auto* v = r.mutable_metrics()->mutable_validation();
  v->set_examples(10);
  v->set_correct(static_cast<int64_t>(val_acc / 10));
  v->set_accuracy(val_acc);
  v->set_log_loss(val_loss);
  (*v->mutable_top_k_accuracy())[10] = 90;
  (*v->mutable_top_k_accuracy())[1] = 30;
  (*v->mutable_top_k_accuracy())[5] = 70;
  auto* t = r.mutable_metrics()->mutable_test();
  t->set_examples(40);
  t->set_accuracy(25);
  t->set_log_loss(2.5);
  r.mutable_validation_delta()->set_accuracy(val_acc - 20);
  r.mutable_validation_delta()->set_log_loss(val_loss - 2);
  return r;
}

TEST(ExitCodes, StatusCodes) {
  EXPECT_EQ(ExitCodeForStatusCode(0), 0);
  EXPECT_EQ(ExitCodeForStatusCode(3), 3);   // INVALID_ARGUMENT
  EXPECT_EQ(ExitCodeForStatusCode(9), 3);   // FAILED_PRECONDITION
  EXPECT_EQ(ExitCodeForStatusCode(6), 3);   // ALREADY_EXISTS
  EXPECT_EQ(ExitCodeForStatusCode(8), 3);   // RESOURCE_EXHAUSTED
  EXPECT_EQ(ExitCodeForStatusCode(11), 3);  // OUT_OF_RANGE
  EXPECT_EQ(ExitCodeForStatusCode(5), 4);   // NOT_FOUND
  EXPECT_EQ(ExitCodeForStatusCode(16), 5);  // UNAUTHENTICATED
  EXPECT_EQ(ExitCodeForStatusCode(7), 5);   // PERMISSION_DENIED
  EXPECT_EQ(ExitCodeForStatusCode(14), 6);  // UNAVAILABLE
  EXPECT_EQ(ExitCodeForStatusCode(4), 6);   // DEADLINE_EXCEEDED
  EXPECT_EQ(ExitCodeForStatusCode(13), 1);  // INTERNAL
  EXPECT_EQ(ExitCodeForStatusCode(15), 1);  // DATA_LOSS
  EXPECT_EQ(ExitCodeForStatusCode(12), 1);  // UNIMPLEMENTED
  EXPECT_EQ(StatusCodeName(3), "INVALID_ARGUMENT");
  EXPECT_EQ(StatusCodeName(16), "UNAUTHENTICATED");
  EXPECT_EQ(StatusCodeName(99), "CODE_99");
}

TEST(ExitCodes, JobStates) {
  EXPECT_EQ(ExitCodeForJobState(pb::JOB_STATE_SUCCEEDED), 0);
  EXPECT_EQ(ExitCodeForJobState(pb::JOB_STATE_FAILED), 7);
  EXPECT_EQ(ExitCodeForJobState(pb::JOB_STATE_CANCELLED), 8);
  EXPECT_EQ(ExitCodeForJobState(pb::JOB_STATE_RUNNING), 1);
  EXPECT_TRUE(IsTerminal(pb::JOB_STATE_CANCELLED));
  EXPECT_FALSE(IsTerminal(pb::JOB_STATE_QUEUED));
}

TEST(Spec, LayersSyntax) {
  auto sel = ParseLayers("3, 0,20-22,4:10:2,7:");
  ASSERT_TRUE(sel.ok()) << sel.status();
  ASSERT_EQ(sel->indices_size(), 2);
  EXPECT_EQ(sel->indices(0), 3);
  EXPECT_EQ(sel->indices(1), 0);
  ASSERT_EQ(sel->ranges_size(), 3);
  EXPECT_EQ(sel->ranges(0).start(), 20);
  EXPECT_EQ(sel->ranges(0).stop(), 23);
  EXPECT_EQ(sel->ranges(1).start(), 4);
  EXPECT_EQ(sel->ranges(1).stop(), 10);
  EXPECT_EQ(sel->ranges(1).step(), 2);
  EXPECT_EQ(sel->ranges(2).start(), 7);
  EXPECT_FALSE(sel->ranges(2).has_stop());
  EXPECT_EQ(ParseLayers("x").status().message(), "--layers: \"x\": not a non-negative integer");
  EXPECT_FALSE(ParseLayers("5-3").ok());
  EXPECT_FALSE(ParseLayers("1:2:0").ok());
  EXPECT_FALSE(ParseLayers("-1").ok());
}

TEST(Spec, FromFlagsEqualsSpecFile) {
  SpecFlags f;
  f.dataset_path = "/data/capitals.jsonl";
  f.allow_changed_file = true;
  f.matrix_types = {"mlp.in,attn.q"};
  f.layers = "22:";
  f.rho = {0.01, 0.5};
  f.svd_method = "exact";
  f.seed = 7;
  f.round_to_source_dtype = true;
  f.intervention_kinds = {"rank_reduction", "PRUNE", "INTERVENTION_KIND_ZERO"};
  f.split = "shuffle";
  f.validation_fraction = 0.25;
  f.top_k = {1, 5};
  f.composition = "greedy";
  f.priority = 3;
  f.keep_example_outputs = true;
  f.labels = {"team=nlp", "run=a=b"};
  auto spec = ApplySpecFlags(f);
  ASSERT_TRUE(spec.ok()) << spec.status();
  auto expected = proto::ParseSweepSpecText(
      R"({"dataset": {"path": "/data/capitals.jsonl", "allow_changed_file": true},
          "matrix_types": ["mlp.in", "attn.q"],
          "layers": {"ranges": [{"start": 22}]},
          "rho": {"values": [0.01, 0.5]},
          "svd": {"method": "SVD_METHOD_EXACT", "seed": 7},
          "round_to_source_dtype": true,
          "intervention_kinds": ["INTERVENTION_KIND_RANK_REDUCTION", "INTERVENTION_KIND_PRUNE",
                                 "INTERVENTION_KIND_ZERO"],
          "split": {"mode": "SPLIT_MODE_SHUFFLE", "validation_fraction": 0.25},
          "top_k": [1, 5],
          "composition": {"mode": "COMPOSITION_MODE_GREEDY"},
          "priority": 3,
          "keep_example_outputs": true,
          "labels": {"team": "nlp", "run": "a=b"}})",
      "expected");
  ASSERT_TRUE(expected.ok()) << expected.status();
  // Map fields (labels) have no defined order in JSON or bytes: compare as messages.
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(*spec, *expected))
      << JsonLine(*spec) << "\nvs\n"
      << JsonLine(*expected);
}

TEST(Spec, FlagsOverrideFile) {
  auto base =
      proto::ParseSweepSpecText(R"({"dataset": {"path": "a.jsonl"}, "rate": {"values": [9.9]},
                                "matrix_types": ["mlp"], "priority": 1})",
                                "base.json");
  ASSERT_TRUE(base.ok());
  SpecFlags f;
  f.rho = {0.1};
  f.priority = 5;
  auto spec = ApplySpecFlags(f, *base);
  ASSERT_TRUE(spec.ok());
  EXPECT_EQ(
      JsonLine(*spec),
      R"({"dataset":{"path":"a.jsonl"},"matrix_types":["mlp"],"rho":{"values":[0.1]},"priority":5})");
}

// --experts (mixture of experts) sets SweepSpec.experts, replacing the file's.
TEST(Spec, ExpertsFlag) {
  auto base = proto::ParseSweepSpecText(
      R"({"dataset": {"path": "a.jsonl"}, "rho": {"values": [0.5]},
          "matrix_types": ["moe.in[2]", "moe.out"], "experts": [7]})",
      "base.json");
  ASSERT_TRUE(base.ok()) << base.status();
  EXPECT_EQ(base->experts_size(), 1);
  SpecFlags f;
  f.experts = {1, 3};
  auto spec = ApplySpecFlags(f, *base);
  ASSERT_TRUE(spec.ok());
  EXPECT_EQ(JsonLine(*spec),
            R"({"dataset":{"path":"a.jsonl"},"matrix_types":["moe.in[2]","moe.out"],)"
            R"("rho":{"values":[0.5]},"experts":[1,3]})");
}

TEST(Spec, GenerationFlags) {
  auto base = proto::ParseSweepSpecText(
      R"({"dataset": {"path": "a.jsonl"}, "rho": {"values": [0.5]},
          "generation": {"stop_strings": ["x"]}})",
      "base.json");
  ASSERT_TRUE(base.ok()) << base.status();
  SpecFlags f;
  f.task = "generation";
  f.match = "prefix";
  f.max_new_tokens = 8;
  f.stop_strings = {"\n", "."};
  f.match_prompt = true;
  auto spec = ApplySpecFlags(f, *base);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(JsonLine(*spec),
            R"({"dataset":{"path":"a.jsonl"},"task":"TASK_KIND_GENERATION",)"
            R"("rho":{"values":[0.5]},"match":"MATCH_RULE_PREFIX",)"
            R"("generation":{"max_new_tokens":8,"stop_strings":["\n","."],"match_prompt":true}})");
  SpecFlags bad;
  bad.match = "fuzzy";
  EXPECT_EQ(ApplySpecFlags(bad).status().message(),
            "--match: unknown value \"fuzzy\" (one of greedy, top1_decoded, exact, prefix, "
            "contains)");
}

TEST(Spec, Errors) {
  SpecFlags f;
  f.svd_method = "fast";
  EXPECT_EQ(ApplySpecFlags(f).status().message(),
            "--svd: unknown value \"fast\" (one of auto, exact, randomized, paper)");
  SpecFlags g;
  g.rho = {0.5};
  g.rate = {9};
  EXPECT_EQ(ApplySpecFlags(g).status().message(), "--rho: give either --rho or --rate, not both");
  SpecFlags h;
  h.labels = {"novalue"};
  EXPECT_EQ(ApplySpecFlags(h).status().message(), "--label: \"novalue\" is not key=value");
  SpecFlags k;
  k.intervention_kinds = {"dropout"};
  EXPECT_EQ(ApplySpecFlags(k).status().message(),
            "--kinds: unknown value \"dropout\" (one of rank_reduction, zero, prune)");
  auto bad = proto::ParseSweepSpecText(R"({"rho": {"valuez": [1]}})", "s.json");
  EXPECT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("s.json: not a laser.v1.SweepSpec"), std::string::npos);
  EXPECT_EQ(*ParseJobState("running"), pb::JOB_STATE_RUNNING);
  EXPECT_EQ(*ParseJobState("JOB_STATE_FAILED"), pb::JOB_STATE_FAILED);
  EXPECT_FALSE(ParseJobState("unspecified").ok());
  EXPECT_EQ(JobStateName(pb::JOB_STATE_CANCELLED), "CANCELLED");
}

TEST(Output, JsonLineSortsTopK) {
  pb::Result r = MakeResult(0, 0, "mlp.in", 0, 0.5, 30, 2);
  const std::string line = JsonLine(r);
  const auto v = line.find(R"("top_k_accuracy":{"1":30,"5":70,"10":90})");
  EXPECT_NE(v, std::string::npos) << line;
  // Layer 0 is a default value and is omitted, as in `laserd sweep` files.
  EXPECT_EQ(line.find("\"layer\""), std::string::npos);
}

TEST(Output, Csv) {
  std::vector<pb::Result> rs = {MakeResult(0, 3, "mlp.in", 2, 0.25, 30, 2.5),
                                MakeResult(1, 4, "attn.q", 2, 0.5, 10, 3)};
  rs[1].add_stacked_on()->set_matrix_type("mlp,weird");
  const std::string csv = FormatResults(rs, Format::kCsv);
  const std::string header =
      "index,plan_index,kind,matrix_type,layer,expert,rho,rate,rank_source,rank,max_rank,"
      "relative_error,svd_method,stacked_on,kept,validation.examples,validation.correct,"
      "validation.accuracy,validation.log_loss,test.examples,test.correct,test.accuracy,"
      "test.log_loss,validation_delta.accuracy,validation_delta.log_loss,test_delta.accuracy,"
      "test_delta.log_loss,validation.top_k.1,validation.top_k.5,validation.top_k.10,"
      "test.top_k.1,test.top_k.5,test.top_k.10,validation_delta.top_k.1,"
      "validation_delta.top_k.5,validation_delta.top_k.10,test_delta.top_k.1,"
      "test_delta.top_k.5,test_delta.top_k.10\n";
  const std::string row0 =
      "0,3,single,mlp.in,2,,0.25,,rho,16,64,0.5,exact,,,10,3,30,2.5,40,0,25,2.5,10,0.5,0,0,30,70,"
      "90,,,,,,,,,\n";
  const std::string row1 =
      "1,4,single,attn.q,2,,0.5,,rho,32,64,0.5,exact,\"mlp,weird@0:0\",,10,1,10,3,40,0,25,2.5,-10,"
      "1,0,0,30,70,90,,,,,,,,,\n";
  EXPECT_EQ(csv, header + row0 + row1);
  EXPECT_EQ(FormatResults({}, Format::kJson), "");
  EXPECT_EQ(FormatResults(rs, Format::kJson), JsonLine(rs[0]) + "\n" + JsonLine(rs[1]) + "\n");
  const std::string table = FormatResults(rs, Format::kTable);
  EXPECT_EQ(table.substr(0, table.find('\n')), TableHeader());
  EXPECT_EQ(TableRow(rs[0]),
            "     0  mlp.in       2     0.25     16    0.5000     30.00    2.5000     25.00    "
            "2.5000    +10.00");
  EXPECT_EQ(*ParseFormat("csv"), Format::kCsv);
  EXPECT_FALSE(ParseFormat("xml").ok());
}

// A result that carries its significance ends its table row with a marker,
// and the one-line form spells out both splits.
TEST(Output, SignificanceMarkerAndLine) {
  pb::Result r;
  r.set_index(4);
  r.mutable_intervention()->set_matrix_type("mlp.in");
  const std::string plain = TableRow(r);
  pb::Significance& s = *r.mutable_significance();
  s.set_result_index(4);
  s.set_alpha(0.05);
  s.set_confidence(0.95);
  EXPECT_EQ(TableRow(r), plain + "  [n.s.]");
  s.mutable_validation()->set_significant(true);
  EXPECT_EQ(TableRow(r), plain + "  [sig val]");
  s.mutable_test()->set_significant(true);
  EXPECT_EQ(TableRow(r), plain + "  [sig val+test]");
  s.mutable_validation()->set_significant(false);
  EXPECT_EQ(api::SignificanceMarker(s), "[sig test]");
  pb::SplitSignificance& t = *s.mutable_test();
  t.set_accuracy_delta(2.5);
  t.set_accuracy_ci_low(0.5);
  t.set_accuracy_ci_high(4.25);
  t.set_p_value(0.0123);
  t.set_improved(12);
  t.set_worsened(3);
  t.set_log_loss_delta(-0.125);
  t.set_log_loss_ci_low(-0.25);
  t.set_log_loss_ci_high(-0.0625);
  EXPECT_EQ(api::SignificanceLine(s),
            "[sig test] alpha 0.05, 95% CI: validation acc +0.00 pp [+0.00, +0.00] p=0 (+0/-0), "
            "log-loss +0.0000 [+0.0000, +0.0000] | test acc +2.50 pp [+0.50, +4.25] p=0.0123 "
            "(+12/-3) *, log-loss -0.1250 [-0.2500, -0.0625]");
}

// An expert's matrix (mixture of experts) shows its index: "moe.in[3]" in the
// table and stacked_on, the expert column in CSV; other rows leave it empty.
TEST(Output, ExpertMatrices) {
  pb::Result r = MakeResult(0, 3, "moe.in", 1, 0.25, 30, 2.5);
  r.mutable_intervention()->set_expert(3);
  pb::Intervention* s = r.add_stacked_on();
  s->set_matrix_type("moe.out");
  s->set_expert(0);
  s->set_layer(1);
  s->set_rho(0.5);
  const std::map<std::string, std::string> m = FlattenResult(r);
  EXPECT_EQ(m.at("matrix_type"), "moe.in");
  EXPECT_EQ(m.at("expert"), "3");
  EXPECT_EQ(m.at("stacked_on"), "moe.out[0]@1:0.5");
  EXPECT_EQ(FlattenResult(MakeResult(0, 3, "moe.router", 1, 0.25, 30, 2.5)).at("expert"), "");
  EXPECT_EQ(TableRow(r).substr(0, 20), "     0  moe.in[3]   ");
}

// The paper's zero and prune baselines are marked after the matrix in the table.
TEST(Output, InterventionKinds) {
  pb::Result r = MakeResult(0, 3, "mlp.in", 1, 0.25, 30, 2.5);
  r.mutable_intervention()->set_kind(pb::INTERVENTION_KIND_PRUNE);
  EXPECT_EQ(TableRow(r).substr(0, 22), "     0  mlp.in prune  ");
  r.mutable_intervention()->set_kind(pb::INTERVENTION_KIND_ZERO);
  EXPECT_EQ(TableRow(r).substr(0, 21), "     0  mlp.in zero  ");
}

TEST(Watch, CursorAcceptsDenseIndicesOnce) {
  WatchCursor c(2);
  EXPECT_EQ(c.Offer(MakeResult(0, 0, "mlp.in", 0, 1, 0, 0)), WatchCursor::Verdict::kDuplicate);
  EXPECT_EQ(c.Offer(MakeResult(2, 2, "mlp.in", 0, 1, 0, 0)), WatchCursor::Verdict::kAccept);
  EXPECT_EQ(c.Offer(MakeResult(2, 2, "mlp.in", 0, 1, 0, 0)), WatchCursor::Verdict::kDuplicate);
  EXPECT_EQ(c.Offer(MakeResult(4, 4, "mlp.in", 0, 1, 0, 0)), WatchCursor::Verdict::kGap);
  EXPECT_EQ(c.next_index(), 3);
  EXPECT_EQ(c.Offer(MakeResult(3, 3, "mlp.in", 0, 1, 0, 0)), WatchCursor::Verdict::kAccept);
  EXPECT_EQ(c.next_index(), 4);
}

TEST(Watch, BestTable) {
  BestTable t(2);
  EXPECT_TRUE(t.Add(MakeResult(0, 0, "mlp.in", 0, 1, 20, 2.0)));
  EXPECT_TRUE(t.Add(MakeResult(1, 1, "mlp.in", 0, 1, 30, 2.5)));
  EXPECT_TRUE(t.Add(MakeResult(2, 2, "mlp.in", 0, 1, 30, 2.1)));  // tie on acc, lower loss
  EXPECT_FALSE(t.Add(MakeResult(3, 3, "mlp.in", 0, 1, 10, 1.0)));
  ASSERT_EQ(t.rows().size(), 2u);
  EXPECT_EQ(t.rows()[0].index(), 2);
  EXPECT_EQ(t.rows()[1].index(), 1);
}

TEST(Watch, ProgressText) {
  pb::Progress p;
  p.set_interventions_total(100);
  p.set_interventions_done(42);
  p.set_fraction(0.42);
  p.set_interventions_per_second(3.125);
  EXPECT_EQ(ProgressBar(p, 10), "[####......] 42/100  42%  3.12/s");
  p.mutable_eta()->set_seconds(3723);
  EXPECT_EQ(ProgressBar(p, 10), "[####......] 42/100  42%  3.12/s  ETA 1:02:03");
  EXPECT_EQ(ProgressLine(p), "progress 42/100 (42%) 3.12/s eta 1:02:03");
  EXPECT_EQ(FormatDuration(78), "1:18");
}

// Shard files as `laserd sweep --shard i/3` writes them: the same header, each
// shard's results in plan order with its own dense index and shard_index.
std::string Header(int64_t total, const std::string& id = "sweep-0123456789abcdef",
                   double rho = 0.5) {
  pb::Job j;
  j.set_id(id);
  j.mutable_spec()->mutable_dataset()->set_path("d.jsonl");
  j.mutable_spec()->mutable_rho()->add_values(rho);
  j.mutable_progress()->set_interventions_total(total);
  return JsonLine(j) + "\n";
}

std::string ShardFile(int shard, int count, int64_t total) {
  std::string text = Header(total);
  int64_t index = 0;
  for (int64_t p = shard; p < total; p += count) {
    pb::Result r = MakeResult(index++, p, "mlp.in", static_cast<int>(p), 0.5, 10.0 * p, 1);
    r.set_shard_index(shard);
    text += JsonLine(r) + "\n";
  }
  return text;
}

TEST(Merge, EqualsOneRun) {
  const int64_t total = 7;
  std::string one_run = Header(total);
  for (int64_t p = 0; p < total; ++p) {
    one_run += JsonLine(MakeResult(p, p, "mlp.in", static_cast<int>(p), 0.5, 10.0 * p, 1)) + "\n";
  }
  auto merged = MergeResults({{"s2", ShardFile(2, 3, total)},
                              {"s0", ShardFile(0, 3, total)},
                              {"s1", ShardFile(1, 3, total)}},
                             false);
  ASSERT_TRUE(merged.ok()) << merged.status();
  EXPECT_EQ(*merged, one_run);
}

TEST(Merge, Refusals) {
  const int64_t total = 4;
  auto missing = MergeResults({{"s0", ShardFile(0, 2, total)}}, false);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(missing.status().message(),
            "merge: 2 of 4 planned results are missing (plan_index 1, 3); is a shard file absent "
            "or unfinished?");
  auto partial = MergeResults({{"s0", ShardFile(0, 2, total)}}, true);
  ASSERT_TRUE(partial.ok());
  EXPECT_EQ(std::count(partial->begin(), partial->end(), '\n'), 3);

  auto dup = MergeResults({{"a", ShardFile(0, 2, total)}, {"b", ShardFile(0, 2, total)}}, false);
  EXPECT_EQ(dup.status().message(), "plan_index 0 appears in both a and b");

  std::string other_spec = ShardFile(1, 2, total);
  other_spec.replace(0, other_spec.find('\n') + 1, Header(total, "sweep-0123456789abcdef", 0.25));
  auto diff = MergeResults({{"a", ShardFile(0, 2, total)}, {"b", other_spec}}, false);
  EXPECT_EQ(diff.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(diff.status().message().find("b and a come from different sweeps: their specs differ"),
            std::string::npos)
      << diff.status().message();

  std::string other_model = ShardFile(1, 2, total);
  other_model.replace(0, other_model.find('\n') + 1, Header(total, "sweep-ffffffffffffffff"));
  auto model = MergeResults({{"a", ShardFile(0, 2, total)}, {"b", other_model}}, false);
  EXPECT_NE(model.status().message().find("the specs agree, so the models differ"),
            std::string::npos);

  std::string cut = ShardFile(0, 2, total);
  cut.resize(cut.size() - 5);
  auto truncated = MergeResults({{"cut", cut}}, true);
  EXPECT_EQ(truncated.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(truncated.status().message().find("cut: the last line is incomplete"),
            std::string::npos);

  std::string garbage =
      Header(total) + "{not json\n" + JsonLine(MakeResult(0, 0, "mlp.in", 0, 1, 0, 0)) + "\n";
  auto bad = MergeResults({{"g", garbage}}, true);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(bad.status().message().find("g line 2: not a laser.v1.Result"), std::string::npos);

  EXPECT_EQ(MergeResults({{"e", ""}}, true).status().message(),
            "e: no header line (a laser.v1.Job); not a sweep results file");
}

}  // namespace
}  // namespace laserd::client
