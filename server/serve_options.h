// The settings of `laserd serve` (its flags, docs/server.md).
#ifndef LASERD_SERVER_SERVE_OPTIONS_H_
#define LASERD_SERVER_SERVE_OPTIONS_H_

#include <cstdint>
#include <string>
#include <vector>

namespace laserd::server {

struct ServeOptions {
  std::string model, device = "auto", tokenizer;
  // Several devices (--devices, entries as laser::ParseDeviceList returns
  // them): one resident replica each; empty = the one `device`.
  std::vector<std::string> devices;
  std::string listen = "127.0.0.1:50051";
  std::string http_listen;  // empty: no HTTP endpoint
  std::string state_dir;
  std::string tokens_file;  // empty: no authentication
  std::string tls_cert, tls_key, tls_client_ca;
  // Directories whose JSONL files specs may name by dataset.path.
  std::vector<std::string> data_dirs;
  int64_t max_message_bytes = 16 << 20;
  int64_t max_dataset_bytes = 64 << 20;
  // The most bytes all stored datasets may take; 0: no quota.
  int64_t dataset_quota_bytes = int64_t{1} << 30;
  // Finished jobs whose end is older than this are deleted (with their
  // results); empty or "0": never (--job-retention).
  std::string job_retention;
  int64_t max_grid = 100000;
  int64_t max_queued = 1000;
  int64_t cache_budget_mb = 1024;
  // Testing only (--test-store-page-headroom, hidden from --help): caps the
  // job store at its size at start plus this many pages (SQLite's
  // max_page_count), so that a write needing more fails as on a full disk.
  // Negative: no cap.
  int64_t test_store_page_headroom = -1;
};

}  // namespace laserd::server

#endif  // LASERD_SERVER_SERVE_OPTIONS_H_
