// `laserd serve` on the real SmolLM2-135M Q4_1 GGUF (skips when it is not
// fetched): health is NOT_SERVING and ModelService UNAVAILABLE until the model
// is resident, then SERVING; DescribeModel reports the file; a served sweep
// equals the headless `laserd sweep` for the same spec.
#include "engine/eval/run.h"
#include "google/protobuf/util/message_differencer.h"
#include "server/sweep_io.h"
#include "tests/e2e/server_harness.h"
#include "tests/support/requirements.h"
#include "tests/support/sha256.h"

namespace {

using laserd_test::Comparable;
using laserd_test::JsonOf;
using laserd_test::kRead;
using laserd_test::Server;
namespace fs = std::filesystem;
namespace pb = ::laser::v1;

TEST(ServerSmolLM2, HealthFollowsTheModelAndASweepEqualsHeadless) {
  const std::string model =
      std::string(LASERD_DATA_DIR) + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
  const std::string caps = std::string(LASERD_DATA_DIR) + "/capitals.jsonl";
  if (!fs::exists(model) || !fs::exists(caps)) {
    LASERD_SKIP_OR_FAIL_IN_CI("SmolLM2 or capitals data absent");
  }
  const fs::path root =
      fs::temp_directory_path() / absl::StrCat("laserd_server_smollm2_", getpid());
  fs::remove_all(root);
  fs::create_directories(root / "data");
  {
    std::ifstream in(caps);
    std::ofstream out(root / "data" / "caps40.jsonl");
    std::string line;
    for (int i = 0; i < 40 && std::getline(in, line); ++i) out << line << "\n";
  }
  Server server(root, model, root / "data");
  // The first health answers come while the GGUF is being read and hashed
  // (polled for up to 60 s: a loaded machine reads slowly).
  std::vector<int> health;
  server.on_port_open = [&] {
    for (int i = 0; i < 6000; ++i) {
      const int h = server.Health();
      if (health.empty() || health.back() != h) health.push_back(h);
      if (h == 1) break;
      if (h == 2 && health.size() == 1) {
        grpc::ClientContext ctx;
        Server::Auth(&ctx, kRead);
        pb::ModelInfo mi;
        const grpc::Status st =
            server.models().DescribeModel(&ctx, pb::DescribeModelRequest(), &mi);
        // UNAVAILABLE while loading. The load may finish between the health
        // answer and this call (the model is resident just before the job
        // runner starts and health turns SERVING); then SERVING must follow.
        if (st.ok()) {
          int h2 = server.Health();
          for (int j = 0; j < 1000 && h2 != 1; ++j) {
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
            h2 = server.Health();
          }
          EXPECT_EQ(h2, 1) << "DescribeModel answered, but health did not turn SERVING";
        } else {
          EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE) << st.error_message();
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  };
  server.Start();
  ASSERT_GE(health.size(), 2u);
  EXPECT_EQ(health.front(), 2) << "expected NOT_SERVING while loading";
  EXPECT_EQ(health.back(), 1);

  grpc::ClientContext ctx;
  Server::Auth(&ctx, kRead);
  pb::ModelInfo mi;
  ASSERT_TRUE(server.models().DescribeModel(&ctx, pb::DescribeModelRequest(), &mi).ok());
  EXPECT_EQ(mi.format(), "gguf");
  EXPECT_EQ(mi.architecture(), "llama");
  EXPECT_EQ(mi.num_layers(), 30);
  EXPECT_EQ(mi.hidden_size(), 576);
  EXPECT_EQ(mi.intermediate_size(), 1536);
  EXPECT_EQ(mi.num_attention_heads(), 9);
  EXPECT_EQ(mi.num_key_value_heads(), 3);
  EXPECT_EQ(mi.vocab_size(), 49152);
  EXPECT_TRUE(mi.tied_embeddings());
  EXPECT_EQ(mi.sha256(), laserd::test_support::FileSha256Hex(model));
  EXPECT_EQ(mi.tokenizer().kind(), "byte_level_bpe");
  EXPECT_EQ(mi.tokenizer().pre_tokenizer(), "smollm");
  EXPECT_FALSE(mi.tokenizer().add_bos());
  EXPECT_NE(std::find(mi.source_dtypes().begin(), mi.source_dtypes().end(), "Q4_1"),
            mi.source_dtypes().end());
  ASSERT_EQ(mi.matrix_types_size(), 7);
  EXPECT_EQ(mi.matrix_types(1).matrix_type(), "attn.k");
  EXPECT_EQ(mi.matrix_types(1).rows(), 192);
  EXPECT_EQ(mi.matrix_types(1).cols(), 576);
  EXPECT_EQ(mi.matrix_types(1).source_tensor(), "blk.0.attn_k.weight");
  EXPECT_EQ(mi.matrix_types(4).source_tensor(), "blk.0.ffn_gate.weight");
  EXPECT_EQ(mi.matrix_types(4).source_dtype(), "Q4_1");

  pb::SweepSpec spec;
  spec.mutable_dataset()->set_path((root / "data" / "caps40.jsonl").string());
  spec.add_matrix_types("mlp.in");
  spec.mutable_layers()->add_indices(28);
  spec.mutable_layers()->add_indices(29);
  spec.mutable_rho()->add_values(0.1);
  spec.mutable_rho()->add_values(0.02);
  spec.mutable_svd()->set_method(pb::SVD_METHOD_EXACT);
  pb::Job job;
  ASSERT_TRUE(server.Create(spec, &job, "smol").ok());
  grpc::Status st;
  const auto evs = server.Watch(job.id(), 0, &st);
  ASSERT_TRUE(st.ok()) << st.error_message();
  std::vector<pb::Result> got;
  for (const auto& e : evs) {
    if (e.has_result()) got.push_back(e.result());
  }

  std::ofstream(root / "spec.json") << JsonOf(spec);
  const std::string cmd =
      absl::StrCat(LASERD_BINARY_DIR, "/server/laserd sweep --model ", model,
                   " --device cpu --spec ", (root / "spec.json").string(), " --out ",
                   (root / "h.jsonl").string(), " --no-progress >/dev/null 2>&1");
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  auto rf = laserd::server::ReadResultsFile((root / "h.jsonl").string());
  ASSERT_TRUE(rf.ok()) << rf.status();
  ASSERT_EQ(got.size(), 4u);
  ASSERT_EQ(rf->results.size(), 4u);
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(Comparable(got[i]),
                                                                   Comparable(rf->results[i])))
        << JsonOf(Comparable(got[i])) << "\n"
        << JsonOf(Comparable(rf->results[i]));
  }
  server.Kill(SIGKILL);
  if (!::testing::Test::HasFailure()) fs::remove_all(root);
}

}  // namespace
