// laserd serve end to end: the real server
// process on loopback with the tiny Llama fixture, driven through the
// generated C++ stubs of proto/laser/v1.
//   - a sweep streams every result once and in order, equal to the headless
//     `laserd sweep` output for the same spec (by path and by upload);
//   - request_id idempotency;
//   - kill -9 in the middle of a sweep, restart: the job completes with the
//     results of an uninterrupted run; a watcher resuming from its last index
//     misses and duplicates nothing;
//   - (bad inputs: server_bad_inputs_test.cc);
//   - health (NOT_SERVING is not observable here: the tiny model loads at
//     once), tokens, /metrics and /api/status.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/eval/run.h"
#include "engine/laser/intervention.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "google/protobuf/util/time_util.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "kernels/svd.h"
#include "laser/v1/dataset.grpc.pb.h"
#include "laser/v1/model.grpc.pb.h"
#include "laser/v1/sweep.grpc.pb.h"
#include "nlohmann/json.hpp"
#include "server/example_outputs.h"
#include "server/sweep_io.h"
#include "tests/e2e/server_harness.h"
#include "tests/e2e/server_test_fixture.h"
#include "tests/support/fixtures.h"
#include "tests/support/sha256.h"

namespace fs = std::filesystem;
namespace pb = ::laser::v1;

namespace {

using laserd_test::Comparable;
using laserd_test::JsonOf;
using laserd_test::kRead;
using laserd_test::kWrite;
using laserd_test::Server;

using laserd_test::ServerTest;

TEST_F(ServerTest, SweepStreamsEveryResultInOrderAndEqualsHeadless) {
  pb::SweepSpec spec = Spec("small.jsonl", {1.0, 0.5, 0.1});
  spec.add_matrix_types("mlp.in");
  spec.add_matrix_types("attn.o");
  spec.mutable_composition()->set_mode(pb::COMPOSITION_MODE_GREEDY);
  const std::vector<pb::Result> want = Headless(spec);
  ASSERT_GT(want.size(), 12u);  // 2 types x 2 layers x 3 ranks, plus composition steps

  pb::Job job;
  ASSERT_TRUE(server_->Create(spec, &job, "req-1").ok());
  EXPECT_EQ(job.state(), pb::JOB_STATE_QUEUED);
  EXPECT_EQ(job.progress().interventions_total(), 12);
  grpc::Status st;
  auto evs = server_->Watch(job.id(), 0, &st);
  ASSERT_TRUE(st.ok()) << st.error_message();
  ASSERT_TRUE(evs.front().has_job());
  ASSERT_TRUE(evs.back().has_state_change());
  EXPECT_EQ(evs.back().state_change().current(), pb::JOB_STATE_SUCCEEDED);
  const auto got = ResultsOf(evs);
  for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i].index(), static_cast<int64_t>(i));
  // The stream carried the baseline and progress with a best-so-far.
  int baselines = 0, progress_with_best = 0;
  for (const auto& e : evs) {
    baselines += e.has_baseline();
    progress_with_best += e.has_progress() && e.progress().has_best();
  }
  EXPECT_EQ(baselines, 1);
  EXPECT_GE(progress_with_best, 1);
  // The last event before the terminal state change is the final progress.
  ASSERT_GE(evs.size(), 2u);
  const pb::Progress& last = evs[evs.size() - 2].progress();
  EXPECT_EQ(last.interventions_done(), static_cast<int64_t>(want.size()));
  EXPECT_DOUBLE_EQ(last.fraction(), 1.0);
  EXPECT_TRUE(last.has_best());
  EXPECT_EQ(last.best().kind(), pb::RESULT_KIND_SINGLE);
  const pb::Job finished = server_->Get(job.id());
  EXPECT_EQ(finished.result_count(), static_cast<int64_t>(want.size()));
  EXPECT_EQ(finished.progress().interventions_done(), static_cast<int64_t>(want.size()));
  EXPECT_TRUE(finished.has_baseline());
  EXPECT_TRUE(finished.progress().has_best());
  ExpectSameResults(got, want);

  // A second watcher of the finished job gets the same results by replay.
  auto replay = server_->Watch(job.id(), 0, &st);
  ExpectSameResults(ResultsOf(replay), want);
  auto tail = server_->Watch(job.id(), 5, &st);
  ExpectSameResults(ResultsOf(tail), std::vector<pb::Result>(want.begin() + 5, want.end()));

  // Same request_id and spec: the same job; a different spec: ALREADY_EXISTS.
  pb::Job again;
  ASSERT_TRUE(server_->Create(spec, &again, "req-1").ok());
  EXPECT_EQ(again.id(), job.id());
  pb::SweepSpec other = spec;
  other.mutable_rho()->set_values(0, 0.25);
  grpc::Status s2 = server_->Create(other, &again, "req-1");
  EXPECT_EQ(s2.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_NE(s2.error_message().find("request_id"), std::string::npos) << s2.error_message();

  // The same sweep over an uploaded copy of the dataset.
  std::ifstream f(root_ / "data" / "small.jsonl");
  const std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  pb::Dataset d = server_->Upload(bytes, &st, kWrite, 37);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(d.example_count(), 20);
  EXPECT_EQ(d.choice_count(), 4);
  EXPECT_EQ(d.id().size(), 64u);
  pb::Dataset d2 = server_->Upload(bytes, &st, kWrite, 1000);  // content-addressed
  EXPECT_EQ(d2.id(), d.id());
  {
    grpc::ClientContext c;
    Server::Auth(&c, kRead);
    pb::ListDatasetsResponse ld;
    ASSERT_TRUE(server_->datasets().ListDatasets(&c, pb::ListDatasetsRequest(), &ld).ok());
    ASSERT_EQ(ld.datasets_size(), 1);
    EXPECT_EQ(ld.datasets(0).id(), d.id());
    EXPECT_EQ(ld.datasets(0).size_bytes(), static_cast<int64_t>(bytes.size()));
    grpc::ClientContext c2;
    Server::Auth(&c2, kRead);
    pb::GetDatasetRequest gr;
    gr.set_dataset_id(d.id());
    pb::Dataset got_d;
    ASSERT_TRUE(server_->datasets().GetDataset(&c2, gr, &got_d).ok());
    EXPECT_EQ(got_d.completion_count(), 16);
    EXPECT_EQ(got_d.id(), laserd::test_support::Sha256Hex(bytes));
  }
  pb::SweepSpec by_id = spec;
  by_id.mutable_dataset()->set_dataset_id(d.id());
  pb::Job job2;
  ASSERT_TRUE(server_->Create(by_id, &job2).ok());
  auto evs2 = server_->Watch(job2.id(), 0, &st);
  ExpectSameResults(ResultsOf(evs2), want);

  // ListResults sorted by a metric.
  grpc::ClientContext ctx;
  Server::Auth(&ctx, kRead);
  pb::ListResultsRequest lr;
  lr.set_job_id(job.id());
  lr.set_order_by("validation.log_loss desc, index");
  lr.set_kind(pb::RESULT_KIND_SINGLE);
  lr.set_page_size(5);
  pb::ListResultsResponse page;
  ASSERT_TRUE(server_->sweeps().ListResults(&ctx, lr, &page).ok());
  EXPECT_EQ(page.total_size(), 12);
  EXPECT_EQ(page.results_size(), 5);
  EXPECT_EQ(page.next_page_token(), "5");
  for (int i = 1; i < page.results_size(); ++i) {
    EXPECT_GE(page.results(i - 1).metrics().validation().log_loss(),
              page.results(i).metrics().validation().log_loss());
  }

  // Metrics and status.
  const std::string metrics = server_->Http("/metrics");
  EXPECT_NE(metrics.find("laserd_jobs{state=\"succeeded\"} 2"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("laserd_rpc_requests_total{method=\"CreateSweep\",code=\"OK\"} 3"),
            std::string::npos);
  EXPECT_NE(metrics.find("laserd_rpc_latency_seconds_bucket{method=\"WatchJob\",le=\"+Inf\"}"),
            std::string::npos);
  auto status = nlohmann::json::parse(server_->Http("/api/status"));
  EXPECT_EQ(status["serving"], true);
  EXPECT_EQ(status["interventions_total"].get<int64_t>(), 2 * static_cast<int64_t>(want.size()));
  // No token is ever logged.
  const std::string log = server_->Log();
  EXPECT_EQ(log.find(kWrite), std::string::npos);
  EXPECT_EQ(log.find(kRead), std::string::npos);
  // Every log line is JSON.
  std::istringstream lines(log);
  std::string line;
  int n = 0;
  while (std::getline(lines, line)) {
    if (line.empty()) continue;
    EXPECT_TRUE(nlohmann::json::accept(line)) << line;
    ++n;
  }
  EXPECT_GT(n, 3);
}

TEST_F(ServerTest, KillMidSweepThenRestartCompletesWithoutLossOrDuplicates) {
  pb::SweepSpec spec = Spec("big.jsonl", {1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1});
  const std::vector<pb::Result> want = Headless(spec);
  ASSERT_EQ(want.size(), 7u * 2 * 10);

  // kill -9 (a crash), then SIGTERM (a shutdown: the intervention in flight
  // finishes, the job stays RUNNING in the store and resumes at the next start).
  for (int sig : {SIGKILL, SIGTERM}) {
    SCOPED_TRACE(sig == SIGKILL ? "SIGKILL" : "SIGTERM");
    const std::string rid = absl::StrCat("kill-me-", sig);
    pb::Job job;
    ASSERT_TRUE(server_->Create(spec, &job, rid).ok());
    grpc::Status st;
    // Watch until 5 results arrived, then kill the server.
    auto first = server_->Watch(job.id(), 0, &st, 5, [&] { server_->Kill(sig); });
    auto got = ResultsOf(first);
    ASSERT_EQ(got.size(), 5u);
    server_->Start();
    const pb::Job restarted = server_->Get(job.id());
    EXPECT_LT(restarted.result_count(), static_cast<int64_t>(want.size()))
        << "the sweep finished before the kill; nothing was resumed";
    EXPECT_GE(restarted.result_count(), 5);
    // The watcher reconnects with its last index + 1.
    auto rest = server_->Watch(job.id(), got.back().index() + 1, &st);
    ASSERT_TRUE(st.ok()) << st.error_message();
    EXPECT_TRUE(rest.back().state_change().current() == pb::JOB_STATE_SUCCEEDED ||
                rest.front().job().state() == pb::JOB_STATE_SUCCEEDED);
    for (const pb::Result& r : ResultsOf(rest)) got.push_back(r);
    for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i].index(), static_cast<int64_t>(i));
    ExpectSameResults(got, want);
    // The retry after the crash returns the same job, complete.
    pb::Job again;
    ASSERT_TRUE(server_->Create(spec, &again, rid).ok());
    EXPECT_EQ(again.id(), job.id());
    EXPECT_EQ(again.state(), pb::JOB_STATE_SUCCEEDED);
    EXPECT_EQ(again.result_count(), static_cast<int64_t>(want.size()));
  }
}

TEST_F(ServerTest, CancelStopsARunningJobAndQueuedJobsWaitByPriority) {
  pb::SweepSpec slow = Spec("big.jsonl", {1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1});
  pb::Job a, b, c;
  ASSERT_TRUE(server_->Create(slow, &a).ok());
  pb::SweepSpec low = Spec("small.jsonl", {0.5});
  low.add_matrix_types("mlp.out");
  pb::SweepSpec high = low;
  high.set_priority(5);
  ASSERT_TRUE(server_->Create(low, &b).ok());
  ASSERT_TRUE(server_->Create(high, &c).ok());
  grpc::Status st;
  // Cancel a after its 3rd result.
  server_->Watch(a.id(), 0, &st, 3);
  grpc::ClientContext ctx;
  Server::Auth(&ctx);
  pb::CancelJobRequest cr;
  cr.set_job_id(a.id());
  pb::Job ca;
  ASSERT_TRUE(server_->sweeps().CancelJob(&ctx, cr, &ca).ok());
  auto evs = server_->Watch(a.id(), 0, &st);
  ASSERT_TRUE(st.ok()) << st.error_message();
  // Either the watch saw the job stop, or it had stopped already.
  EXPECT_TRUE(evs.back().state_change().current() == pb::JOB_STATE_CANCELLED ||
              evs.front().job().state() == pb::JOB_STATE_CANCELLED);
  const pb::Job done_a = server_->Get(a.id());
  EXPECT_EQ(done_a.state(), pb::JOB_STATE_CANCELLED);
  // Stopped within one intervention of the request.
  EXPECT_LE(done_a.result_count(), ca.result_count() + 1);
  EXPECT_EQ(static_cast<int64_t>(ResultsOf(evs).size()), done_a.result_count());
  server_->Watch(b.id(), 0, &st);
  const pb::Job jb = server_->Get(b.id()), jc = server_->Get(c.id());
  EXPECT_EQ(jb.state(), pb::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(jc.state(), pb::JOB_STATE_SUCCEEDED);
  // Higher priority ran first although created later.
  EXPECT_LT(google::protobuf::util::TimeUtil::TimestampToNanoseconds(jc.start_time()),
            google::protobuf::util::TimeUtil::TimestampToNanoseconds(jb.start_time()));
  // ListJobs: filters and paging.
  grpc::ClientContext lc;
  Server::Auth(&lc, kRead);
  pb::ListJobsRequest lr;
  lr.add_states(pb::JOB_STATE_SUCCEEDED);
  lr.set_page_size(1);
  pb::ListJobsResponse lresp;
  ASSERT_TRUE(server_->sweeps().ListJobs(&lc, lr, &lresp).ok());
  EXPECT_EQ(lresp.total_size(), 2);
  EXPECT_EQ(lresp.jobs_size(), 1);
  EXPECT_EQ(lresp.jobs(0).id(), c.id());  // newest first
  EXPECT_EQ(lresp.next_page_token(), "1");
}

TEST_F(ServerTest, ConcurrentWatchersAndSpectrumDuringASweep) {
  pb::SweepSpec spec = Spec("big.jsonl", {1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1});
  pb::Job job;
  ASSERT_TRUE(server_->Create(spec, &job).ok());
  constexpr int kWatchers = 4;
  std::vector<std::vector<pb::Result>> seen(kWatchers);
  std::vector<grpc::Status> status(kWatchers);
  std::vector<std::thread> threads;
  for (int i = 0; i < kWatchers; ++i) {
    threads.emplace_back([&, i] { seen[i] = ResultsOf(server_->Watch(job.id(), 0, &status[i])); });
  }
  // Spectra requested while the sweep edits the model (dense edits at rho >= 0.7)
  // must be those of the unedited matrices.
  std::vector<pb::Spectrum> spectra;
  bool running_during = false;
  for (const char* type : {"mlp.in", "attn.q", "mlp.out"}) {
    for (int layer : {0, 1}) {
      running_during |= server_->Get(job.id()).state() == pb::JOB_STATE_RUNNING;
      grpc::ClientContext ctx;
      Server::Auth(&ctx, kRead);
      pb::GetSpectrumRequest req;
      req.set_matrix_type(type);
      req.set_layer(layer);
      pb::Spectrum sp;
      ASSERT_TRUE(server_->models().GetSpectrum(&ctx, req, &sp).ok());
      spectra.push_back(sp);
    }
  }
  for (auto& t : threads) t.join();
  EXPECT_TRUE(running_during) << "the sweep ended before the spectra were requested";
  for (int i = 0; i < kWatchers; ++i) {
    ASSERT_TRUE(status[i].ok()) << status[i].error_message();
    ASSERT_EQ(seen[i].size(), 140u);
    for (size_t k = 0; k < seen[i].size(); ++k) {
      EXPECT_EQ(seen[i][k].index(), static_cast<int64_t>(k));
      EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(seen[i][k], seen[0][k]));
    }
  }
  laserd_test::ExpectSpectraOfUneditedModel(root_ / "model", spectra);
}

TEST_F(ServerTest, TlsAndMutualTls) {
  if (std::system("openssl version >/dev/null 2>&1") != 0) GTEST_SKIP() << "no openssl CLI";
  const fs::path dir = root_ / "tls";
  fs::create_directories(dir);
  const std::string gen = absl::StrCat(
      "cd ", dir.string(),
      " && openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem -days 2 "
      "-subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 >/dev/null 2>&1");
  ASSERT_EQ(std::system(gen.c_str()), 0);
  auto read = [&](const char* f) {
    std::ifstream in(dir / f);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  };
  const std::string cert = read("cert.pem"), key = read("key.pem");
  grpc::SslCredentialsOptions with_cert{cert, key, cert};
  Server tls(dir, root_ / "model", root_ / "data");
  tls.extra_args = {"--tls-cert",      (dir / "cert.pem").string(),
                    "--tls-key",       (dir / "key.pem").string(),
                    "--tls-client-ca", (dir / "cert.pem").string()};
  tls.creds = grpc::SslCredentials(with_cert);
  tls.Start();
  ASSERT_EQ(tls.Health(), 1);
  auto describe = [](std::shared_ptr<grpc::Channel> ch) {
    auto stub = pb::ModelService::NewStub(ch);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    Server::Auth(&ctx, kRead);
    pb::ModelInfo mi;
    return stub->DescribeModel(&ctx, pb::DescribeModelRequest(), &mi);
  };
  EXPECT_TRUE(describe(tls.NewChannel(grpc::SslCredentials(with_cert))).ok());
  // mTLS: a client without a certificate, or without TLS, is refused.
  grpc::SslCredentialsOptions no_cert;
  no_cert.pem_root_certs = cert;
  EXPECT_EQ(describe(tls.NewChannel(grpc::SslCredentials(no_cert))).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(describe(tls.NewChannel(grpc::InsecureChannelCredentials())).error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

TEST_F(ServerTest, DescribeModelAndSpectrum) {
  grpc::ClientContext ctx;
  Server::Auth(&ctx, kRead);
  pb::ModelInfo mi;
  ASSERT_TRUE(server_->models().DescribeModel(&ctx, pb::DescribeModelRequest(), &mi).ok());
  EXPECT_EQ(mi.architecture(), "llama");
  EXPECT_EQ(mi.num_layers(), 2);
  EXPECT_EQ(mi.hidden_size(), 64);
  EXPECT_EQ(mi.context_length(), 128);
  EXPECT_EQ(mi.matrix_types_size(), 7);
  EXPECT_EQ(mi.matrix_types(4).matrix_type(), "mlp.in");
  EXPECT_EQ(mi.matrix_types(4).rows(), 128);
  EXPECT_EQ(mi.matrix_types(4).cols(), 64);
  EXPECT_EQ(mi.matrix_types(4).source_tensor(), "model.layers.0.mlp.gate_proj.weight");
  EXPECT_EQ(mi.matrix_types(4).source_dtype(), "F32");
  EXPECT_EQ(mi.matrix_types(4).aliases(0), "fc_in");
  EXPECT_EQ(mi.matrix_types(4).layers_size(), 2);
  EXPECT_EQ(mi.device(), pb::DEVICE_CPU);
  EXPECT_EQ(mi.sha256().size(), 64u);
  grpc::ClientContext c2;
  Server::Auth(&c2, kRead);
  pb::GetSpectrumRequest sr;
  sr.set_matrix_type("fc_in");
  sr.set_layer(1);
  pb::Spectrum sp;
  ASSERT_TRUE(server_->models().GetSpectrum(&c2, sr, &sp).ok());
  EXPECT_EQ(sp.matrix_type(), "mlp.in");
  EXPECT_EQ(sp.singular_values_size(), 64);
  double sq = 0;
  for (int i = 0; i < sp.singular_values_size(); ++i) {
    sq += sp.singular_values(i) * sp.singular_values(i);
    if (i) {
      EXPECT_GE(sp.singular_values(i - 1), sp.singular_values(i));
    }
  }
  EXPECT_NEAR(std::sqrt(sq), sp.frobenius_norm(), 1e-4 * sp.frobenius_norm());
  // The Marchenko-Pastur rule recomputed from the returned spectrum.
  std::vector<double> asc(sp.singular_values().begin(), sp.singular_values().end());
  std::sort(asc.begin(), asc.end());
  auto q = [&](double p) {
    double pos = p * (asc.size() - 1);
    size_t lo = static_cast<size_t>(pos);
    return asc[lo] + (pos - lo) * (asc[std::min(lo + 1, asc.size() - 1)] - asc[lo]);
  };
  const double sigma = (q(0.75) - q(0.25)) / 1.349;
  const double thr = sigma * (1 + std::sqrt(64.0 / 128.0));
  int64_t k = 0;
  for (double v : sp.singular_values()) k += v > thr;
  EXPECT_DOUBLE_EQ(sp.marchenko_pastur().sigma(), sigma);
  EXPECT_DOUBLE_EQ(sp.marchenko_pastur().beta(), 0.5);
  EXPECT_EQ(sp.marchenko_pastur().suggested_rank(), std::max<int64_t>(k, 1));
}

// keep_example_outputs across a crash: every result a watcher was told of has
// its example outputs stored, the restarted job completes them, each once,
// they equal the headless example outputs file, and the best single's
// significance (stored with it, tested against the stored baseline outputs)
// is what GetSignificance recomputes from them.
TEST_F(ServerTest, ExampleOutputsSurviveAKillAndMatchHeadless) {
  pb::SweepSpec spec = Spec("big.jsonl", {1.0, 0.8, 0.6, 0.4, 0.2, 0.1});
  spec.set_keep_example_outputs(true);
  const std::vector<pb::Result> want = Headless(spec);
  ASSERT_EQ(want.size(), 7u * 2 * 6);
  std::vector<pb::ExampleOutputs> want_outputs;
  {
    std::ifstream in(root_ / "headless.examples.jsonl");
    std::string line;
    while (std::getline(in, line)) {
      pb::ExampleOutputs o;
      ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(line, &o).ok()) << line;
      want_outputs.push_back(std::move(o));
    }
  }
  ASSERT_EQ(want_outputs.size(), want.size() + 1);

  pb::Job job;
  ASSERT_TRUE(server_->Create(spec, &job, "keep-outputs").ok());
  grpc::Status st;
  auto first = server_->Watch(job.id(), 0, &st, 4, [&] { server_->Kill(SIGKILL); });
  const auto seen = ResultsOf(first);
  ASSERT_EQ(seen.size(), 4u);
  server_->Start();
  // What the watcher saw is stored with its outputs, whatever the job does next.
  {
    pb::ListExampleOutputsRequest req;
    req.set_job_id(job.id());
    req.set_page_size(1000);
    pb::ListExampleOutputsResponse resp;
    grpc::ClientContext ctx;
    Server::Auth(&ctx, kRead);
    ASSERT_TRUE(server_->sweeps().ListExampleOutputs(&ctx, req, &resp).ok());
    ASSERT_GE(resp.outputs_size(), 5);
    for (int i = 0; i < 5; ++i) EXPECT_EQ(resp.outputs(i).result_index(), i - 1);
  }
  auto rest = server_->Watch(job.id(), seen.back().index() + 1, &st);
  ASSERT_TRUE(st.ok()) << st.error_message();
  const pb::Job done = server_->Get(job.id());
  ASSERT_EQ(done.state(), pb::JOB_STATE_SUCCEEDED);
  ASSERT_EQ(done.result_count(), static_cast<int64_t>(want.size()));

  std::vector<pb::ExampleOutputs> got;
  std::string token;
  do {
    pb::ListExampleOutputsRequest req;
    req.set_job_id(job.id());
    req.set_page_size(7);
    req.set_page_token(token);
    pb::ListExampleOutputsResponse resp;
    grpc::ClientContext ctx;
    Server::Auth(&ctx, kRead);
    ASSERT_TRUE(server_->sweeps().ListExampleOutputs(&ctx, req, &resp).ok());
    EXPECT_EQ(resp.total_size(), static_cast<int64_t>(want.size() + 1));
    for (const auto& o : resp.outputs()) got.push_back(o);
    token = resp.next_page_token();
  } while (!token.empty());
  ASSERT_EQ(got.size(), want_outputs.size());
  for (size_t i = 0; i < got.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(got[i].job_id(), job.id());
    got[i].set_job_id(want_outputs[i].job_id());
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(got[i], want_outputs[i]));
  }
  ASSERT_TRUE(done.progress().has_best());
  EXPECT_TRUE(done.progress().best().has_significance());
  pb::GetSignificanceRequest sreq;
  sreq.set_job_id(job.id());
  pb::Significance best_sig;
  {
    grpc::ClientContext ctx;
    Server::Auth(&ctx, kRead);
    ASSERT_TRUE(server_->sweeps().GetSignificance(&ctx, sreq, &best_sig).ok());
  }
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(
      best_sig, done.progress().best().significance()));
  // The same numbers from the outputs (result 3 has none stored with it unless
  // it was a best; either way the answer is the recomputation).
  sreq.set_result_index(3);
  pb::Significance s3;
  {
    grpc::ClientContext ctx;
    Server::Auth(&ctx, kRead);
    ASSERT_TRUE(server_->sweeps().GetSignificance(&ctx, sreq, &s3).ok());
  }
  auto recomputed = laserd::server::SignificanceProto(got[0], got[4]);
  ASSERT_TRUE(recomputed.ok());
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(s3, *recomputed));
  EXPECT_EQ(s3.result_index(), 3);
}

}  // namespace
