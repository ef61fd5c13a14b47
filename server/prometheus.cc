#include "server/prometheus.h"

#include <unistd.h>

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace laserd::server {

int64_t ProcessRssBytes() {
  std::ifstream f("/proc/self/statm");
  int64_t size = 0, rss = 0;
  if (!(f >> size >> rss)) return 0;
  return rss * sysconf(_SC_PAGESIZE);
}

std::pair<int64_t, int64_t> HostMemoryBytes() {
  std::ifstream f("/proc/meminfo");
  std::string key, unit;
  int64_t v = 0, total = 0, avail = 0;
  while (f >> key >> v >> unit) {
    if (key == "MemTotal:") total = v * 1024;
    if (key == "MemAvailable:") avail = v * 1024;
  }
  return {total, avail};
}

void PrometheusMetrics::RecordRpc(const std::string& method, const std::string& code,
                                  double seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  ++rpc_counts_[{method, code}];
  Histogram& h = rpc_latency_[method];
  for (size_t i = 0; i < kBuckets.size(); ++i) {
    if (seconds <= kBuckets[i]) ++h.counts[i];
  }
  ++h.count;
  h.sum += seconds;
}

void PrometheusMetrics::RecordMalformedRequest(const std::string& method) {
  std::lock_guard<std::mutex> lock(mu_);
  ++malformed_requests_[method];
}

void PrometheusMetrics::AddIntervention() {
  std::lock_guard<std::mutex> lock(mu_);
  ++interventions_;
}

int64_t PrometheusMetrics::interventions_total() const {
  std::lock_guard<std::mutex> lock(mu_);
  return interventions_;
}

namespace {
// Label values: backslash, double quote and newline escaped.
std::string Label(const std::string& v) {
  std::string o;
  for (char c : v) {
    if (c == '\\')
      o += "\\\\";
    else if (c == '"')
      o += "\\\"";
    else if (c == '\n')
      o += "\\n";
    else
      o += c;
  }
  return o;
}
std::string Num(double v) { return absl::StrFormat("%.17g", v); }
}  // namespace

std::string PrometheusMetrics::Render(const Snapshot& s) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string o;
  absl::StrAppend(&o, "# HELP laserd_up Whether the model is resident and the server serving.\n",
                  "# TYPE laserd_up gauge\nlaserd_up ", s.serving ? 1 : 0, "\n");
  absl::StrAppend(&o, "# HELP laserd_jobs Jobs in the job store by state.\n",
                  "# TYPE laserd_jobs gauge\n");
  for (const auto& [state, n] : s.jobs_by_state) {
    absl::StrAppend(&o, "laserd_jobs{state=\"", Label(state), "\"} ", n, "\n");
  }
  absl::StrAppend(&o, "# HELP laserd_queue_depth Jobs waiting to run.\n",
                  "# TYPE laserd_queue_depth gauge\nlaserd_queue_depth ", s.queue_depth, "\n");
  absl::StrAppend(&o, "# HELP laserd_interventions_total Interventions evaluated since start.\n",
                  "# TYPE laserd_interventions_total counter\nlaserd_interventions_total ",
                  interventions_, "\n");
  absl::StrAppend(&o, "# HELP laserd_interventions_per_second Throughput of the running job.\n",
                  "# TYPE laserd_interventions_per_second gauge\n"
                  "laserd_interventions_per_second ",
                  Num(s.interventions_per_second), "\n");
  absl::StrAppend(&o, "# HELP laserd_rpc_requests_total RPCs handled, by method and code.\n",
                  "# TYPE laserd_rpc_requests_total counter\n");
  for (const auto& [k, n] : rpc_counts_) {
    absl::StrAppend(&o, "laserd_rpc_requests_total{method=\"", Label(k.first), "\",code=\"",
                    Label(k.second), "\"} ", n, "\n");
  }
  absl::StrAppend(&o,
                  "# HELP laserd_rpc_malformed_requests_total Requests whose bytes did not parse "
                  "as the method's request message (answered INVALID_ARGUMENT), by method.\n",
                  "# TYPE laserd_rpc_malformed_requests_total counter\n");
  for (const auto& [m, n] : malformed_requests_) {
    absl::StrAppend(&o, "laserd_rpc_malformed_requests_total{method=\"", Label(m), "\"} ", n, "\n");
  }
  absl::StrAppend(&o, "# HELP laserd_rpc_latency_seconds RPC handling time, by method.\n",
                  "# TYPE laserd_rpc_latency_seconds histogram\n");
  for (const auto& [m, h] : rpc_latency_) {
    for (size_t i = 0; i < kBuckets.size(); ++i) {
      absl::StrAppend(&o, "laserd_rpc_latency_seconds_bucket{method=\"", Label(m), "\",le=\"",
                      Num(kBuckets[i]), "\"} ", h.counts[i], "\n");
    }
    absl::StrAppend(&o, "laserd_rpc_latency_seconds_bucket{method=\"", Label(m), "\",le=\"+Inf\"} ",
                    h.count, "\n");
    absl::StrAppend(&o, "laserd_rpc_latency_seconds_sum{method=\"", Label(m), "\"} ", Num(h.sum),
                    "\n");
    absl::StrAppend(&o, "laserd_rpc_latency_seconds_count{method=\"", Label(m), "\"} ", h.count,
                    "\n");
  }
  const auto [total, avail] = HostMemoryBytes();
  absl::StrAppend(&o, "# HELP laserd_process_resident_memory_bytes Resident set size.\n",
                  "# TYPE laserd_process_resident_memory_bytes gauge\n"
                  "laserd_process_resident_memory_bytes ",
                  ProcessRssBytes(), "\n");
  absl::StrAppend(
      &o, "# HELP laserd_device_memory_bytes Memory of the compute device (host for CPU).\n",
      "# TYPE laserd_device_memory_bytes gauge\n", "laserd_device_memory_bytes{kind=\"total\"} ",
      total, "\n", "laserd_device_memory_bytes{kind=\"free\"} ", avail, "\n");
  return o;
}

}  // namespace laserd::server
