// libFuzzer: one laser.v1 RPC per input, straight into the server's handlers.
// The first byte picks the method (kMethods below, modulo its size); the rest
// is that method's request message in protobuf wire format, parsed as gRPC
// would (a message that does not parse never reaches a handler). Unary RPCs
// run their handler (server/*_handlers.cc) on the ServerState of
// server_fuzz_state.h; WatchJob and UploadDataset run their real reactors
// (server/watch_reactor.cc, server/upload_reactor.cc) on an in-memory stream
// that stands in for gRPC's transport: WatchJob's events are collected and
// the watch is cancelled when it does not end by itself; UploadDataset's
// input is a sequence of length-delimited UploadDatasetRequest messages fed
// to the reactor one read at a time, then the end of the stream.
//
// Checks beyond ASan/UBSan: no handler answers INTERNAL or UNKNOWN (nor
// DATA_LOSS outside an upload's sha256 mismatch); every error has a message;
// every response serializes and parses back (so its strings are valid UTF-8);
// GetJob answers the job asked for; a watch's first event is the job and its
// results come in index order from from_result_index; an upload's id is the
// sha256 of its chunks.
//
// With LASERD_FUZZ_WRITE_SEEDS=DIR set, writes one or more seeds per method
// to DIR and exits (scripts/fuzz.sh does this before a run).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/sha256.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/util/delimited_message_util.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/support/server_callback.h"
#include "server/grpc_status.h"
#include "server/upload_reactor.h"
#include "server/watch_reactor.h"
#include "tests/fuzz/server_fuzz_state.h"

namespace {

namespace pb = ::laser::v1;
using laserd::fuzz::Die;
using laserd::fuzz::FuzzServer;

FuzzServer& Server() {
  static FuzzServer* s = new FuzzServer(/*with_tokens=*/false);
  return *s;
}

void Check(bool ok, const std::string& what) {
  if (!ok) Die(what);
}

// An error a handler may answer: a code a client can act on, with a message.
void CheckStatus(const absl::Status& st, const char* method, bool data_loss_ok = false) {
  if (st.ok()) return;
  Check(!st.message().empty(), absl::StrCat(method, ": error without a message"));
  const absl::StatusCode c = st.code();
  Check(c != absl::StatusCode::kInternal && c != absl::StatusCode::kUnknown &&
            (data_loss_ok || c != absl::StatusCode::kDataLoss),
        absl::StrCat(method, ": ", st.ToString()));
}

// A response gRPC can send and a client can read back.
void CheckResponse(const google::protobuf::Message& m, const char* method) {
  std::string bytes;
  Check(m.SerializeToString(&bytes), absl::StrCat(method, ": response does not serialize"));
  std::unique_ptr<google::protobuf::Message> back(m.New());
  Check(back->ParseFromString(bytes),
        absl::StrCat(method, ": response does not parse back (invalid UTF-8?)"));
}

template <typename T>
void CheckOr(const absl::StatusOr<T>& r, const char* method) {
  CheckStatus(r.status(), method);
  if (r.ok()) CheckResponse(*r, method);
}

// The transport side of a server-streaming call: Write and Finish are
// recorded; the driver then acknowledges each write (OnWriteDone) as gRPC
// would, one at a time.
class MemoryWriter final : public grpc::ServerCallbackWriter<pb::WatchJobEvent> {
 public:
  explicit MemoryWriter(laserd::server::WatchReactor* r) : reactor_(r) {}
  void Bind() { BindReactor(reactor_); }
  void Finish(grpc::Status s) override {
    Check(!finished_, "WatchJob: finished twice");
    finished_ = true;
    status_ = std::move(s);
  }
  void SendInitialMetadata() override {}
  void Write(const pb::WatchJobEvent* msg, grpc::WriteOptions) override {
    Check(!write_pending_, "WatchJob: a write before the previous one completed");
    Check(!finished_, "WatchJob: a write after Finish");
    events.push_back(*msg);
    write_pending_ = true;
  }
  void WriteAndFinish(const pb::WatchJobEvent* msg, grpc::WriteOptions o, grpc::Status s) override {
    Write(msg, o);
    write_pending_ = false;
    Finish(std::move(s));
  }
  // Acknowledges writes until none is pending.
  void Drain() {
    while (write_pending_) {
      write_pending_ = false;
      reactor_->OnWriteDone(true);
    }
  }
  bool finished() const { return finished_; }
  const grpc::Status& status() const { return status_; }
  std::vector<pb::WatchJobEvent> events;

 private:
  grpc::internal::ServerReactor* reactor() override { return reactor_; }
  void CallOnDone() override {}
  laserd::server::WatchReactor* reactor_;
  bool finished_ = false, write_pending_ = false;
  grpc::Status status_;
};

// The transport side of a client-streaming call: each Read is answered with
// the next message, then the end of the stream.
class MemoryReader final : public grpc::ServerCallbackReader<pb::UploadDatasetRequest> {
 public:
  explicit MemoryReader(laserd::server::UploadReactor* r) : reactor_(r) {}
  void Bind() { BindReactor(reactor_); }
  void Finish(grpc::Status s) override {
    Check(!finished_, "UploadDataset: finished twice");
    finished_ = true;
    status_ = std::move(s);
  }
  void SendInitialMetadata() override {}
  void Read(pb::UploadDatasetRequest* msg) override {
    Check(pending_ == nullptr, "UploadDataset: two reads at once");
    pending_ = msg;
  }
  void Feed(const std::vector<pb::UploadDatasetRequest>& msgs) {
    size_t next = 0;
    while (pending_ != nullptr && !finished_) {
      pb::UploadDatasetRequest* dst = pending_;
      pending_ = nullptr;
      if (next < msgs.size()) {
        *dst = msgs[next++];
        reactor_->OnReadDone(true);
      } else {
        reactor_->OnReadDone(false);
      }
    }
  }
  bool finished() const { return finished_; }
  const grpc::Status& status() const { return status_; }

 private:
  grpc::internal::ServerReactor* reactor() override { return reactor_; }
  void CallOnDone() override {}
  laserd::server::UploadReactor* reactor_;
  bool finished_ = false;
  pb::UploadDatasetRequest* pending_ = nullptr;
  grpc::Status status_;
};

absl::Status FromGrpc(const grpc::Status& s) {
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

// What an input did to the fixtures, so the next input starts the same.
struct Effects {
  std::string created_job;
  std::string uploaded_dataset;
  bool touched_fixtures = false;
};

void CreateSweep(const std::string& body, Effects* fx) {
  pb::CreateSweepRequest req;
  if (!req.ParseFromString(body)) return;
  auto r = Server().state().sweeps.CreateSweep(req);
  CheckOr(r, "CreateSweep");
  if (!r.ok()) return;
  Check(r->progress().interventions_total() <= Server().state().options.max_grid,
        "CreateSweep: a sweep over --max-grid accepted");
  if (req.validate_only()) {
    Check(r->id().empty(), "CreateSweep: validate_only created a job");
  } else {
    Check(!r->id().empty(), "CreateSweep: a job without an id");
    if (r->id() != laserd::fuzz::kDoneJob && r->id() != laserd::fuzz::kQueuedJob) {
      fx->created_job = r->id();
    }
  }
}

void WatchJob(const std::string& body) {
  pb::WatchJobRequest req;
  if (!req.ParseFromString(body)) return;
  laserd::server::ServerState& s = Server().state();
  // As SweepServiceImpl::WatchJob: the reactor first, the watch, then the
  // call is bound (gRPC binds the reactor after the method returns).
  auto* w = new laserd::server::WatchReactor(&s.jobs, req.job_id(), req.from_result_index());
  absl::Status st = s.sweeps.StartWatch(req, w);
  CheckStatus(st, "WatchJob");
  if (!st.ok()) w->FinishWith(laserd::server::ToGrpc(st));
  MemoryWriter stream(w);
  stream.Bind();
  stream.Drain();
  const bool cancelled = !stream.finished();
  if (cancelled) {  // a job that is not finished: the client goes away
    w->OnCancel();
    stream.Drain();
  }
  Check(stream.finished(), "WatchJob: the stream did not finish after a cancel");
  const std::vector<pb::WatchJobEvent> events = stream.events;
  const grpc::Status end = stream.status();
  w->OnDone();  // deletes w
  if (!st.ok()) {
    Check(events.empty(), "WatchJob: events on a refused watch");
    Check(end.error_code() == laserd::server::ToGrpc(st).error_code(),
          "WatchJob: finished with another status than the handler's");
    return;
  }
  if (cancelled) {
    Check(end.error_code() == grpc::StatusCode::CANCELLED, "WatchJob: cancelled but not CANCELLED");
  } else {
    Check(end.ok(), absl::StrCat("WatchJob: a finished job's watch ended ", end.error_message()));
  }
  Check(!events.empty() && events[0].has_job() && events[0].job().id() == req.job_id(),
        "WatchJob: the first event is not the job");
  int64_t next = req.from_result_index();
  for (const pb::WatchJobEvent& e : events) {
    CheckResponse(e, "WatchJob");
    if (e.has_result()) {
      Check(e.result().index() >= next, "WatchJob: results out of order");
      next = e.result().index() + 1;
    }
  }
}

void UploadDataset(const std::string& body, Effects* fx) {
  std::vector<pb::UploadDatasetRequest> msgs;
  google::protobuf::io::ArrayInputStream in(body.data(), static_cast<int>(body.size()));
  while (true) {
    pb::UploadDatasetRequest m;
    bool clean_eof = false;
    if (!google::protobuf::util::ParseDelimitedFromZeroCopyStream(&m, &in, &clean_eof)) {
      if (!clean_eof) return;  // a message gRPC would not deliver
      break;
    }
    msgs.push_back(std::move(m));
  }
  std::string all;
  for (const auto& m : msgs) {
    if (m.part_case() == pb::UploadDatasetRequest::kChunk) all += m.chunk();
  }
  grpc::CallbackServerContext ctx;
  pb::Dataset resp;
  auto* r = new laserd::server::UploadReactor(&Server().state(), &ctx, &resp);
  MemoryReader stream(r);
  stream.Bind();
  stream.Feed(msgs);
  Check(stream.finished(), "UploadDataset: the stream ended but the call did not finish");
  const grpc::Status end = stream.status();
  r->OnDone();  // deletes r
  CheckStatus(FromGrpc(end), "UploadDataset", /*data_loss_ok=*/true);
  if (end.ok()) {
    CheckResponse(resp, "UploadDataset");
    Check(resp.id() == laserd::Sha256Hex(all), "UploadDataset: id is not the sha256");
    fx->uploaded_dataset = resp.id();
  }
}

struct Method {
  const char* name;
  std::function<void(const std::string&, Effects*)> run;
};

const std::vector<Method>& Methods() {
  static const auto* m = new std::vector<Method>{
      {"CreateSweep", CreateSweep},
      {"GetJob",
       [](const std::string& b, Effects*) {
         pb::GetJobRequest req;
         if (!req.ParseFromString(b)) return;
         auto r = Server().state().sweeps.GetJob(req.job_id());
         CheckOr(r, "GetJob");
         if (r.ok()) Check(r->id() == req.job_id(), "GetJob: another job");
       }},
      {"ListJobs",
       [](const std::string& b, Effects*) {
         pb::ListJobsRequest req;
         if (!req.ParseFromString(b)) return;
         auto r = Server().state().sweeps.ListJobs(req);
         CheckOr(r, "ListJobs");
         if (r.ok()) Check(r->jobs_size() <= 1000, "ListJobs: page over 1000");
       }},
      {"CancelJob",
       [](const std::string& b, Effects* fx) {
         pb::CancelJobRequest req;
         if (!req.ParseFromString(b)) return;
         auto r = Server().state().sweeps.CancelJob(req.job_id());
         CheckOr(r, "CancelJob");
         fx->touched_fixtures = r.ok();
       }},
      {"DeleteJob",
       [](const std::string& b, Effects* fx) {
         pb::DeleteJobRequest req;
         if (!req.ParseFromString(b)) return;
         absl::Status st = Server().state().sweeps.DeleteJob(req);
         CheckStatus(st, "DeleteJob");
         fx->touched_fixtures = st.ok();
       }},
      {"WatchJob", [](const std::string& b, Effects*) { WatchJob(b); }},
      {"ListResults",
       [](const std::string& b, Effects*) {
         pb::ListResultsRequest req;
         if (!req.ParseFromString(b)) return;
         auto r = Server().state().sweeps.ListResults(req);
         CheckOr(r, "ListResults");
         if (r.ok()) {
           Check(r->results_size() <= 10000, "ListResults: page over 10000");
           Check(r->results_size() <= r->total_size(), "ListResults: more than total_size");
         }
       }},
      {"ListExampleOutputs",
       [](const std::string& b, Effects*) {
         pb::ListExampleOutputsRequest req;
         if (!req.ParseFromString(b)) return;
         auto r = Server().state().sweeps.ListExampleOutputs(req);
         CheckOr(r, "ListExampleOutputs");
         if (r.ok()) {
           Check(r->outputs_size() <= 1000, "ListExampleOutputs: page over 1000");
           Check(r->outputs_size() <= r->total_size(), "ListExampleOutputs: more than total_size");
         }
       }},
      {"GetSignificance",
       [](const std::string& b, Effects*) {
         pb::GetSignificanceRequest req;
         if (!req.ParseFromString(b)) return;
         CheckOr(Server().state().sweeps.GetSignificance(req), "GetSignificance");
       }},
      {"DescribeModel",
       [](const std::string& b, Effects*) {
         pb::DescribeModelRequest req;
         if (!req.ParseFromString(b)) return;
         CheckOr(Server().state().models.DescribeModel(), "DescribeModel");
       }},
      {"GetSpectrum",
       [](const std::string& b, Effects*) {
         pb::GetSpectrumRequest req;
         if (!req.ParseFromString(b)) return;
         auto r = Server().state().models.GetSpectrum(req);
         CheckOr(r, "GetSpectrum");
         if (r.ok()) Check(r->singular_values_size() == r->max_rank(), "GetSpectrum: rank");
       }},
      {"UploadDataset", UploadDataset},
      {"ListDatasets",
       [](const std::string& b, Effects*) {
         pb::ListDatasetsRequest req;
         if (!req.ParseFromString(b)) return;
         CheckOr(Server().state().datasets.ListDatasets(req), "ListDatasets");
       }},
      {"GetDataset",
       [](const std::string& b, Effects*) {
         pb::GetDatasetRequest req;
         if (!req.ParseFromString(b)) return;
         auto r = Server().state().datasets.GetDataset(req.dataset_id());
         CheckOr(r, "GetDataset");
         if (r.ok()) Check(r->id() == req.dataset_id(), "GetDataset: another dataset");
       }},
  };
  return *m;
}

size_t IndexOf(const std::string& name) {
  const auto& ms = Methods();
  for (size_t i = 0; i < ms.size(); ++i) {
    if (name == ms[i].name) return i;
  }
  Die(absl::StrCat("no method ", name));
}

// Seeds: valid and invalid requests of every method.
void WriteSeeds(const std::string& dir) {
  FuzzServer& fs = Server();
  int n = 0;
  auto put = [&](const char* method, const google::protobuf::Message& m) {
    std::ofstream(absl::StrCat(dir, "/", method, "_", n++), std::ios::binary)
        << static_cast<char>(IndexOf(method)) << m.SerializeAsString();
  };
  const std::string done = laserd::fuzz::kDoneJob, queued = laserd::fuzz::kQueuedJob;
  {
    pb::CreateSweepRequest r;
    *r.mutable_spec() = fs.fixture_spec();
    put("CreateSweep", r);
    r.set_validate_only(true);
    put("CreateSweep", r);
    r.set_validate_only(false);
    r.set_request_id("fixture-done");  // a retry of job-done's request
    put("CreateSweep", r);
    r.set_request_id("");
    r.mutable_spec()->mutable_dataset()->set_path((fs.root() / "data" / "ten.jsonl").string());
    r.mutable_spec()->clear_matrix_types();
    r.mutable_spec()->add_matrix_types("attn");
    r.mutable_spec()->mutable_layers()->add_ranges()->set_start(1);
    r.mutable_spec()->mutable_layers()->add_indices(0);
    r.mutable_spec()->mutable_composition()->set_mode(pb::COMPOSITION_MODE_GREEDY);
    r.mutable_spec()->add_top_k(2);
    put("CreateSweep", r);
    r.mutable_spec()->mutable_dataset()->set_path("/etc/passwd");
    put("CreateSweep", r);
    r.mutable_spec()->clear_rho();
    r.mutable_spec()->mutable_rate()->add_values(9.0);
    r.mutable_spec()->mutable_svd()->set_method(pb::SVD_METHOD_RANDOMIZED);
    r.mutable_spec()->mutable_svd()->set_power_iterations(2);
    put("CreateSweep", r);
  }
  for (const std::string& id :
       {done, queued, std::string("job-%FF"), std::string("../job-done"), std::string()}) {
    pb::GetJobRequest g;
    g.set_job_id(id);
    put("GetJob", g);
    pb::CancelJobRequest c;
    c.set_job_id(id);
    put("CancelJob", c);
    pb::DeleteJobRequest d;
    d.set_job_id(id);
    d.set_force(id == queued);
    put("DeleteJob", d);
    pb::WatchJobRequest w;
    w.set_job_id(id);
    w.set_from_result_index(id == done ? 1 : 0);
    put("WatchJob", w);
    pb::ListExampleOutputsRequest eo;
    eo.set_job_id(id);
    eo.set_page_size(1);
    put("ListExampleOutputs", eo);
    pb::GetSignificanceRequest sg;
    sg.set_job_id(id);
    put("GetSignificance", sg);
    sg.set_result_index(id == done ? 0 : -3);
    put("GetSignificance", sg);
  }
  {
    pb::ListJobsRequest r;
    put("ListJobs", r);
    r.add_states(pb::JOB_STATE_QUEUED);
    (*r.mutable_labels())["team"] = "fuzz";
    r.set_page_size(1);
    r.set_page_token("1");
    put("ListJobs", r);
  }
  {
    pb::ListResultsRequest r;
    r.set_job_id(done);
    put("ListResults", r);
    r.set_order_by("validation.accuracy desc, test_delta.top_k_accuracy.5, layer");
    r.add_matrix_types("mlp.out");
    r.add_layers(1);
    r.set_kind(pb::RESULT_KIND_SINGLE);
    r.set_page_size(1);
    r.set_page_token("1");
    put("ListResults", r);
  }
  put("DescribeModel", pb::DescribeModelRequest());
  {
    pb::GetSpectrumRequest r;
    r.set_matrix_type("mlp.out");
    r.set_layer(1);
    put("GetSpectrum", r);
    r.set_matrix_type("attn");
    put("GetSpectrum", r);
  }
  {
    std::vector<pb::UploadDatasetRequest> msgs(3);
    msgs[0].mutable_header()->set_display_name("ten");
    msgs[0].mutable_header()->set_expected_sha256(fs.dataset_id());
    const std::string ten = laserd::test_support::kTenExamples;
    msgs[1].set_chunk(ten.substr(0, 70));
    msgs[2].set_chunk(ten.substr(70));
    for (int variant = 0; variant < 3; ++variant) {
      if (variant == 1) msgs[0].mutable_header()->set_expected_sha256("00");
      if (variant == 2) {
        msgs[0].mutable_header()->clear_expected_sha256();
        msgs[2].set_chunk("{\"prompt\": \"x\", \"answer\": \" y\"}\n");
      }
      std::string body;
      {
        google::protobuf::io::StringOutputStream out(&body);
        for (const auto& m : msgs) {
          google::protobuf::util::SerializeDelimitedToZeroCopyStream(m, &out);
        }
      }
      std::ofstream(absl::StrCat(dir, "/UploadDataset_", n++), std::ios::binary)
          << static_cast<char>(IndexOf("UploadDataset")) << body;
    }
  }
  {
    pb::ListDatasetsRequest r;
    put("ListDatasets", r);
    r.set_page_token("-1");
    put("ListDatasets", r);
    pb::GetDatasetRequest g;
    g.set_dataset_id(fs.dataset_id());
    put("GetDataset", g);
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  Server();  // the model and fixtures, before the first input
  if (const char* dir = std::getenv("LASERD_FUZZ_WRITE_SEEDS")) {
    WriteSeeds(dir);
    std::exit(0);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const auto& methods = Methods();
  const Method& m = methods[data[0] % methods.size()];
  const std::string body(reinterpret_cast<const char*>(data) + 1, size - 1);
  Effects fx;
  m.run(body, &fx);
  FuzzServer& s = Server();
  if (!fx.created_job.empty()) {
    if (absl::Status st = s.state().jobs.Delete(fx.created_job, /*force=*/true); !st.ok()) {
      Die(absl::StrCat("deleting the created job: ", st.ToString()));
    }
  }
  if (!fx.uploaded_dataset.empty()) s.DropDataset(fx.uploaded_dataset);
  if (fx.touched_fixtures) s.RestoreFixtures();
  return 0;
}
