// DatasetHandlers::StoreDataset on rejected uploads: the message reports the
// first bad records and counts the rest, and checking a large upload of bad
// lines costs memory in proportion to what is reported, not to every bad line.
#include <malloc.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <new>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/dataset_handlers.h"
#include "server/job_store.h"

// Live and peak heap bytes of this process (every operator new of the test
// binary goes through here).
namespace {
std::atomic<int64_t> g_live{0};
std::atomic<int64_t> g_peak{0};
void* Track(void* p) {
  if (p == nullptr) throw std::bad_alloc();
  const int64_t now = g_live += static_cast<int64_t>(malloc_usable_size(p));
  int64_t peak = g_peak.load();
  while (now > peak && !g_peak.compare_exchange_weak(peak, now)) {
  }
  return p;
}
void Untrack(void* p) {
  if (p != nullptr) g_live -= static_cast<int64_t>(malloc_usable_size(p));
  std::free(p);
}
}  // namespace

void* operator new(size_t n) { return Track(std::malloc(n == 0 ? 1 : n)); }
void* operator new[](size_t n) { return Track(std::malloc(n == 0 ? 1 : n)); }
void operator delete(void* p) noexcept { Untrack(p); }
void operator delete[](void* p) noexcept { Untrack(p); }
void operator delete(void* p, size_t) noexcept { Untrack(p); }
void operator delete[](void* p, size_t) noexcept { Untrack(p); }

namespace fs = std::filesystem;

namespace {

TEST(DatasetHandlersTest, ARejectedUploadOfManyBadLinesCostsLittleMemory) {
  const fs::path dir = fs::temp_directory_path() / absl::StrCat("laserd_dsh_test_", getpid());
  fs::remove_all(dir);
  auto store = laserd::server::JobStore::Open(dir.string());
  ASSERT_TRUE(store.ok()) << store.status();
  laserd::server::DatasetHandlers handlers(**store);

  // 6 MiB: one good record, then bad lines whose JSON error messages quote
  // what was read.
  std::string bytes = "{\"prompt\": \"a\", \"answer\": \" b\"}\n";
  const std::string bad = absl::StrCat("{\"prompt\": \"", std::string(40, 'x'), "\", oops}\n");
  int64_t bad_lines = 0;
  while (bytes.size() < (6u << 20)) {
    bytes += bad;
    ++bad_lines;
  }
  const int64_t before = g_live.load();
  g_peak = before;
  auto d = handlers.StoreDataset("bad", "", bytes);
  const int64_t peak_extra = g_peak.load() - before;
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
  const std::string msg(d.status().message());
  EXPECT_NE(msg.find(absl::StrCat(bad_lines, " bad records")), std::string::npos)
      << msg.substr(0, 300);
  EXPECT_NE(msg.find("line 2: "), std::string::npos) << msg.substr(0, 300);
  EXPECT_NE(msg.find(absl::StrCat("and ", bad_lines - 20, " more")), std::string::npos)
      << msg.substr(msg.size() > 300 ? msg.size() - 300 : 0);
  EXPECT_LT(msg.size(), 20000u);
  // The input is 6 MiB; checking it may not cost more than a few MiB beside.
  EXPECT_LT(peak_extra, int64_t{4} << 20) << "peak extra heap while checking: " << peak_extra;
  fs::remove_all(dir);
}

}  // namespace
