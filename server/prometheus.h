// Prometheus metrics of laserd, in the text exposition format (version 0.0.4)
// written here: prometheus-cpp is not packaged in Debian 12 (docs/server.md).
#ifndef LASERD_SERVER_PROMETHEUS_H_
#define LASERD_SERVER_PROMETHEUS_H_

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>

namespace laserd::server {

// Resident set size of this process, bytes (0 when unknown).
int64_t ProcessRssBytes();
// Host memory total and available, bytes (/proc/meminfo; 0 when unknown).
std::pair<int64_t, int64_t> HostMemoryBytes();

class PrometheusMetrics {
 public:
  // Latency histogram buckets (seconds).
  static constexpr std::array<double, 12> kBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                      0.05,   0.1,   0.25,   0.5,   1.0,  2.5};
  void RecordRpc(const std::string& method, const std::string& code, double seconds);
  // A request whose bytes did not parse as the method's request message
  // (server/malformed_request.h); such a call never reaches a handler, so it is
  // not in RecordRpc's counts.
  void RecordMalformedRequest(const std::string& method);
  void AddIntervention();
  int64_t interventions_total() const;

  // Values sampled at scrape time.
  struct Snapshot {
    std::map<std::string, int64_t> jobs_by_state;  // state name -> count
    int64_t queue_depth = 0;
    double interventions_per_second = 0;
    bool serving = false;
  };
  std::string Render(const Snapshot& s) const;

 private:
  struct Histogram {
    std::array<int64_t, kBuckets.size()> counts{};
    int64_t count = 0;
    double sum = 0;
  };
  mutable std::mutex mu_;
  std::map<std::pair<std::string, std::string>, int64_t> rpc_counts_;
  std::map<std::string, Histogram> rpc_latency_;
  std::map<std::string, int64_t> malformed_requests_;
  int64_t interventions_ = 0;
};

}  // namespace laserd::server

#endif  // LASERD_SERVER_PROMETHEUS_H_
