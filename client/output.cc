// laserctl's shared output (output.h).
#include "client/output.h"

#include <google/protobuf/util/json_util.h>

#include <ctime>
#include <iostream>

#include "absl/strings/str_format.h"
#include "client/laserctl_core.h"
#include "proto/results_io.h"

namespace laserd::client {

namespace pb = ::laser::v1;

std::string PrettyJson(const google::protobuf::Message& m) {
  google::protobuf::util::JsonPrintOptions opts;
  opts.preserve_proto_field_names = true;
  opts.add_whitespace = true;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(m, &out, opts);
  return out;
}

std::string Timestamp(const google::protobuf::Timestamp& t) {
  if (t.seconds() == 0 && t.nanos() == 0) return "-";
  char buf[32];
  time_t s = t.seconds();
  struct tm tm;
  gmtime_r(&s, &tm);
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

void PrintJobSummary(const pb::Job& j) {
  std::cout << "id:        " << j.id() << "\n"
            << "state:     " << JobStateName(j.state())
            << (j.cancel_requested() && !IsTerminal(j.state()) ? " (cancel requested)" : "") << "\n"
            << "progress:  " << ProgressLine(j.progress()) << "\n"
            << "results:   " << j.result_count() << "\n"
            << "examples:  validation " << j.validation_examples() << ", test " << j.test_examples()
            << "\n"
            << "created:   " << Timestamp(j.create_time()) << "\n";
  if (j.has_baseline()) {
    std::cout << absl::StrFormat("baseline:  val acc %.2f loss %.4f, test acc %.2f loss %.4f\n",
                                 j.baseline().validation().accuracy(),
                                 j.baseline().validation().log_loss(),
                                 j.baseline().test().accuracy(), j.baseline().test().log_loss());
  }
  if (j.progress().has_best()) {
    std::cout << "best:      " << TableRow(j.progress().best()) << "\n";
    if (j.progress().best().has_significance()) {
      std::cout << "           " << api::SignificanceLine(j.progress().best().significance())
                << "\n";
    }
  }
  if (j.has_best_composition()) {
    std::cout << "best stack: " << TableRow(j.best_composition()) << "\n";
    if (j.best_composition().has_significance()) {
      std::cout << "           " << api::SignificanceLine(j.best_composition().significance())
                << "\n";
    }
  }
  if (j.state() == pb::JOB_STATE_FAILED) {
    std::cout << "error:     " << StatusCodeName(j.error().code()) << ": " << j.error().message()
              << "\n";
  }
  for (const auto& [k, v] : j.spec().labels()) std::cout << "label:     " << k << "=" << v << "\n";
}

}  // namespace laserd::client
