// The JSON file a gpu_bench section writes: rewritten (to a temporary file,
// then renamed) after every value set, so a section killed by its time limit
// leaves everything it measured before. A section's deadline is kept here too.
#ifndef LASERD_BENCH_GPU_BENCH_REPORT_H_
#define LASERD_BENCH_GPU_BENCH_REPORT_H_

#include <chrono>
#include <string>
#include <utility>

#include "nlohmann/json.hpp"

namespace laserd::bench {

class BenchReport {
 public:
  // budget_s: seconds this section may take (0: no limit).
  BenchReport(std::string path, double budget_s);
  // report[key] = value (a JSON pointer such as "/svd/routes/exact" nests), then written.
  void Set(const std::string& key, nlohmann::json value);
  const nlohmann::json& json() const { return json_; }
  double Elapsed() const;
  // Seconds left of the budget (a large number without one).
  double Left() const;

 private:
  void Write() const;
  std::string path_;
  double budget_s_;
  std::chrono::steady_clock::time_point start_;
  nlohmann::json json_ = nlohmann::json::object();
};

double SecondsSince(std::chrono::steady_clock::time_point t);

}  // namespace laserd::bench

#endif  // LASERD_BENCH_GPU_BENCH_REPORT_H_
