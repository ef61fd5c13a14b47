#include "bench/gpu/bench_report.h"

#include <cstdio>
#include <fstream>

namespace laserd::bench {

double SecondsSince(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

BenchReport::BenchReport(std::string path, double budget_s)
    : path_(std::move(path)), budget_s_(budget_s), start_(std::chrono::steady_clock::now()) {
  Write();
}

void BenchReport::Set(const std::string& key, nlohmann::json value) {
  if (!key.empty() && key[0] == '/') {
    json_[nlohmann::json::json_pointer(key)] = std::move(value);
  } else {
    json_[key] = std::move(value);
  }
  json_["seconds"] = Elapsed();
  Write();
}

double BenchReport::Elapsed() const { return SecondsSince(start_); }

double BenchReport::Left() const { return budget_s_ > 0 ? budget_s_ - Elapsed() : 1e9; }

void BenchReport::Write() const {
  if (path_.empty()) return;
  const std::string tmp = path_ + ".tmp";
  {
    std::ofstream out(tmp);
    out << json_.dump(1) << "\n";
  }
  std::rename(tmp.c_str(), path_.c_str());
}

}  // namespace laserd::bench
