#include "server/job_store.h"

#include <sqlite3.h>

#include <cerrno>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"

namespace laserd::server {
namespace {

namespace pb = ::laser::v1;

// The status of the last SQLite error on `db`: a full disk (SQLITE_FULL, the
// database at its max_page_count, or an I/O error whose system error is
// ENOSPC or EDQUOT) is RESOURCE_EXHAUSTED, a damaged file DATA_LOSS, a store
// locked by another connection past the busy timeout UNAVAILABLE, anything
// else INTERNAL.
absl::Status SqliteError(sqlite3* db, const std::string& msg) {
  const int code = sqlite3_errcode(db) & 0xff;
  const int sys = sqlite3_system_errno(db);
  if (code == SQLITE_IOERR && (sys == ENOSPC || sys == EDQUOT)) {
    return absl::ResourceExhaustedError(msg);
  }
  switch (code) {
    case SQLITE_FULL:
      return absl::ResourceExhaustedError(msg);
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return absl::DataLossError(msg);
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return absl::UnavailableError(msg);  // another connection holds the store
    default:
      return absl::InternalError(msg);
  }
}

// A prepared statement, finalized on scope exit.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) : db_(db) {
    rc_ = sqlite3_prepare_v2(db, sql, -1, &s_, nullptr);
  }
  ~Stmt() { sqlite3_finalize(s_); }
  bool ok() const { return rc_ == SQLITE_OK; }
  sqlite3_stmt* get() { return s_; }
  void Bind(int i, const std::string& v) {
    sqlite3_bind_blob(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  }
  void BindText(int i, const std::string& v) {
    sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  }
  void Bind(int i, int64_t v) { sqlite3_bind_int64(s_, i, v); }
  int Step() { return sqlite3_step(s_); }
  std::string Blob(int c) {
    const void* p = sqlite3_column_blob(s_, c);
    return std::string(static_cast<const char*>(p), sqlite3_column_bytes(s_, c));
  }
  int64_t Int(int c) { return sqlite3_column_int64(s_, c); }
  absl::Status Error(const std::string& what) {
    return SqliteError(db_, absl::StrCat("job store: ", what, ": ", sqlite3_errmsg(db_)));
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* s_ = nullptr;
  int rc_;
};

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS jobs (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  request_id TEXT,
  spec BLOB NOT NULL,
  state INTEGER NOT NULL,
  priority INTEGER NOT NULL,
  created INTEGER NOT NULL,
  progress BLOB,
  error TEXT,
  job BLOB NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS jobs_request_id ON jobs(request_id) WHERE request_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS results (
  job_id TEXT NOT NULL,
  idx INTEGER NOT NULL,
  plan_index INTEGER NOT NULL,
  result BLOB NOT NULL,
  PRIMARY KEY (job_id, idx),
  UNIQUE (job_id, plan_index));
CREATE TABLE IF NOT EXISTS example_outputs (
  job_id TEXT NOT NULL,
  idx INTEGER NOT NULL,
  outputs BLOB NOT NULL,
  PRIMARY KEY (job_id, idx));
CREATE TABLE IF NOT EXISTS datasets (
  id TEXT PRIMARY KEY,
  bytes BLOB NOT NULL,
  record_count INTEGER NOT NULL,
  created INTEGER NOT NULL,
  meta BLOB NOT NULL);
)sql";

std::string Bytes(const google::protobuf::Message& m) {
  std::string s;
  m.SerializeToString(&s);
  return s;
}

absl::StatusOr<StoredJob> JobFromRow(Stmt& st) {
  StoredJob j;
  j.seq = st.Int(0);
  if (!j.job.ParseFromString(st.Blob(1))) {
    return absl::DataLossError(absl::StrCat("job store: job row ", j.seq, " is corrupt"));
  }
  return j;
}

// The schema: PRAGMA user_version of the store. 0 is a store written before
// the version was recorded (the same tables).
constexpr int64_t kSchemaVersion = 1;
constexpr const char* kSetSchemaVersion = "PRAGMA user_version = 1;";

// DATA_LOSS naming the store, the cause, and what the operator does.
absl::Status Damaged(const std::string& path, const std::string& cause) {
  return absl::DataLossError(absl::StrCat(
      "job store ", path, " is damaged (", cause,
      "); laserd does not start on it and has not changed it. Move it aside and restore a "
      "backup (docs/server.md, \"Checking and backing up the store\")"));
}

// A new store at `path`: initialised under a temporary name and renamed, so
// that `path` is either absent or a complete store.
absl::Status CreateStore(const std::string& path) {
  const std::string tmp = path + ".new";
  std::error_code ec;
  for (const char* suffix : {"", "-wal", "-shm", "-journal"}) {
    std::filesystem::remove(tmp + suffix, ec);
  }
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(tmp.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
  std::string err;
  if (rc == SQLITE_OK) {
    const std::string sql = absl::StrCat("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;",
                                         kSchema, kSetSchemaVersion);
    char* e = nullptr;
    rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &e);
    if (e != nullptr) err = e;
    sqlite3_free(e);
  } else {
    err = sqlite3_errmsg(db);
  }
  // Closing the only connection checkpoints the WAL into the file.
  if (sqlite3_close(db) != SQLITE_OK && rc == SQLITE_OK) {
    rc = SQLITE_ERROR;
    err = "close failed";
  }
  if (rc == SQLITE_OK) std::filesystem::rename(tmp, path, ec);
  if (rc != SQLITE_OK || ec) {
    return absl::PermissionDeniedError(absl::StrCat("--state-dir: cannot create ", path, ": ",
                                                    rc != SQLITE_OK ? err : ec.message()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<JobStore>> JobStore::Open(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    return absl::PermissionDeniedError(
        absl::StrCat("--state-dir: cannot create ", dir, ": ", ec.message()));
  }
  std::unique_ptr<JobStore> s(new JobStore);
  s->path_ = (fs::path(dir) / "laserd.db").string();
  const bool exists = fs::exists(s->path_, ec);
  if (ec) {
    // Never create (rename over) a store whose presence could not be checked.
    return absl::PermissionDeniedError(
        absl::StrCat("--state-dir: cannot check ", s->path_, ": ", ec.message()));
  }
  if (exists) {
    const auto size = fs::file_size(s->path_, ec);
    if (ec) return Damaged(s->path_, ec.message());
    // Open never leaves an empty file behind (a new store is initialised under
    // another name, then renamed): zero bytes are a truncated store.
    if (size == 0) return Damaged(s->path_, "the file is empty (0 bytes)");
  } else {
    LASERD_RETURN_IF_ERROR(CreateStore(s->path_));
  }
  if (sqlite3_open_v2(s->path_.c_str(), &s->db_, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
    return absl::PermissionDeniedError(
        absl::StrCat("--state-dir: cannot open ", s->path_, ": ", sqlite3_errmsg(s->db_)));
  }
  sqlite3_busy_timeout(s->db_, 5000);
  LASERD_RETURN_IF_ERROR(s->Check());
  for (const char* sql : {"PRAGMA journal_mode=WAL;", "PRAGMA synchronous=FULL;", kSchema}) {
    LASERD_RETURN_IF_ERROR(s->Exec(sql));
  }
  return s;
}

absl::Status JobStore::Check() {
  std::string problems;
  {
    Stmt qc(db_, "PRAGMA quick_check(20);");
    if (!qc.ok()) return Damaged(path_, sqlite3_errmsg(db_));
    int rc;
    while ((rc = qc.Step()) == SQLITE_ROW) {
      const auto* t = reinterpret_cast<const char*>(sqlite3_column_text(qc.get(), 0));
      const std::string line = t ? t : "";
      if (line != "ok") absl::StrAppend(&problems, problems.empty() ? "" : "; ", line);
    }
    if (rc != SQLITE_DONE) return Damaged(path_, sqlite3_errmsg(db_));
  }
  if (!problems.empty()) return Damaged(path_, absl::StrCat("PRAGMA quick_check: ", problems));
  Stmt uv(db_, "PRAGMA user_version;");
  if (!uv.ok() || uv.Step() != SQLITE_ROW) return Damaged(path_, sqlite3_errmsg(db_));
  const int64_t version = uv.Int(0);
  if (version > kSchemaVersion) {
    return absl::FailedPreconditionError(
        absl::StrCat("job store ", path_, " has schema version ", version,
                     ", written by a newer laserd (this one reads up to ", kSchemaVersion, ")"));
  }
  // A version 0 store (before the version was recorded) may lack the tables
  // added later, which kSchema then creates; from version 1 on all are there.
  Stmt tables(db_,
              "SELECT count(*), sum(name = 'jobs') FROM sqlite_master WHERE type = 'table' AND "
              "name IN ('jobs', 'results', 'datasets');");
  if (!tables.ok() || tables.Step() != SQLITE_ROW) return Damaged(path_, sqlite3_errmsg(db_));
  if (tables.Int(1) != 1 || (version >= 1 && tables.Int(0) != 3)) {
    return Damaged(path_, absl::StrCat("schema version ", version, " but ", tables.Int(0),
                                       " of its 3 tables"));
  }
  return Exec(kSetSchemaVersion);
}

JobStore::~JobStore() {
  if (db_) sqlite3_close(db_);
}

absl::Status JobStore::Exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    absl::Status s = SqliteError(db_, absl::StrCat("job store (", path_, "): ", err ? err : "?"));
    sqlite3_free(err);
    return s;
  }
  return absl::OkStatus();
}

absl::Status JobStore::Abandon(absl::Status cause) {
  // SQLite may have rolled the transaction back itself (on SQLITE_FULL, an
  // I/O error, ...): then there is nothing left to roll back.
  if (sqlite3_get_autocommit(db_)) return cause;
  if (absl::Status rb = Exec("ROLLBACK"); !rb.ok()) {
    // Rare (SQLite ends a transaction on ROLLBACK unless the connection is
    // broken); the caller learns both, and the next write fails to begin.
    return absl::Status(cause.code(),
                        absl::StrCat(cause.message(), "; the rollback failed too: ", rb.message()));
  }
  return cause;
}

absl::Status JobStore::Commit() {
  absl::Status s = Exec("COMMIT");
  if (!s.ok()) return Abandon(std::move(s));
  return absl::OkStatus();
}

absl::StatusOr<int64_t> JobStore::SetMaxPageCount(int64_t pages) {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt st(db_, absl::StrCat("PRAGMA max_page_count = ", pages, ";").c_str());
  if (!st.ok() || st.Step() != SQLITE_ROW) return st.Error("max_page_count");
  return st.Int(0);
}

absl::StatusOr<int64_t> JobStore::PageCount() {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt st(db_, "PRAGMA page_count;");
  if (!st.ok() || st.Step() != SQLITE_ROW) return st.Error("page_count");
  return st.Int(0);
}

absl::StatusOr<int64_t> JobStore::InsertJob(const pb::Job& job) {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt st(db_,
          "INSERT INTO jobs (id, request_id, spec, state, priority, created, progress, error, job) "
          "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");
  if (!st.ok()) return st.Error("prepare insert");
  st.BindText(1, job.id());
  if (!job.request_id().empty()) st.BindText(2, job.request_id());
  st.Bind(3, Bytes(job.spec()));
  st.Bind(4, int64_t{job.state()});
  st.Bind(5, int64_t{job.spec().priority()});
  st.Bind(6, int64_t{job.create_time().seconds()} * 1000000000 + job.create_time().nanos());
  st.Bind(7, Bytes(job.progress()));
  st.BindText(8, job.error().message());
  st.Bind(9, Bytes(job));
  const int rc = st.Step();
  if (rc == SQLITE_CONSTRAINT) {
    return absl::AlreadyExistsError(
        absl::StrCat("job ", job.id(), " or request_id '", job.request_id(), "' exists"));
  }
  if (rc != SQLITE_DONE) return st.Error("insert job");
  return sqlite3_last_insert_rowid(db_);
}

absl::Status JobStore::UpdateJob(const pb::Job& job, const pb::ExampleOutputs* baseline_outputs) {
  std::lock_guard<std::mutex> lock(mu_);
  if (baseline_outputs != nullptr) LASERD_RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
  auto fail = [&](absl::Status s) {
    return baseline_outputs != nullptr ? Abandon(std::move(s)) : s;
  };
  {
    Stmt st(db_, "UPDATE jobs SET state = ?, progress = ?, error = ?, job = ? WHERE id = ?");
    if (!st.ok()) return fail(st.Error("prepare update"));
    st.Bind(1, int64_t{job.state()});
    st.Bind(2, Bytes(job.progress()));
    st.BindText(3, job.error().message());
    st.Bind(4, Bytes(job));
    st.BindText(5, job.id());
    if (st.Step() != SQLITE_DONE) return fail(st.Error("update job"));
    if (sqlite3_changes(db_) == 0) return fail(absl::NotFoundError(absl::StrCat("job ", job.id())));
  }
  if (baseline_outputs == nullptr) return absl::OkStatus();
  LASERD_RETURN_IF_ERROR(PutExampleOutputsLocked(job.id(), -1, *baseline_outputs));
  return Commit();
}

absl::Status JobStore::PutExampleOutputsLocked(const std::string& job_id, int64_t idx,
                                               const pb::ExampleOutputs& outputs) {
  Stmt ins(db_, "INSERT OR REPLACE INTO example_outputs (job_id, idx, outputs) VALUES (?, ?, ?)");
  if (!ins.ok()) return Abandon(ins.Error("prepare insert example outputs"));
  ins.BindText(1, job_id);
  ins.Bind(2, idx);
  ins.Bind(3, Bytes(outputs));
  if (ins.Step() != SQLITE_DONE) return Abandon(ins.Error("insert example outputs"));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<pb::ExampleOutputs>> JobStore::ReadExampleOutputs(
    const std::string& job_id, int64_t from, int64_t to, int64_t limit, int64_t offset) {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt st(db_,
          "SELECT outputs FROM example_outputs WHERE job_id = ? AND idx >= ? AND idx <= ? "
          "ORDER BY idx LIMIT ? OFFSET ?");
  if (!st.ok()) return st.Error("prepare read example outputs");
  st.BindText(1, job_id);
  st.Bind(2, from);
  st.Bind(3, to);
  st.Bind(4, limit);
  st.Bind(5, offset);
  std::vector<pb::ExampleOutputs> out;
  int rc;
  while ((rc = st.Step()) == SQLITE_ROW) {
    pb::ExampleOutputs o;
    if (!o.ParseFromString(st.Blob(0))) {
      return absl::DataLossError(
          absl::StrCat("job store: example outputs of ", job_id, " are corrupt"));
    }
    out.push_back(std::move(o));
  }
  if (rc != SQLITE_DONE) return st.Error("read example outputs");
  return out;
}

absl::StatusOr<int64_t> JobStore::CountExampleOutputs(const std::string& job_id, int64_t from,
                                                      int64_t to) {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt st(db_, "SELECT count(*) FROM example_outputs WHERE job_id = ? AND idx >= ? AND idx <= ?");
  if (!st.ok()) return st.Error("prepare count example outputs");
  st.BindText(1, job_id);
  st.Bind(2, from);
  st.Bind(3, to);
  if (st.Step() != SQLITE_ROW) return st.Error("count example outputs");
  return st.Int(0);
}

absl::StatusOr<StoredJob> JobStore::GetJob(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt st(db_, "SELECT seq, job FROM jobs WHERE id = ?");
  if (!st.ok()) return st.Error("prepare get");
  st.BindText(1, id);
  const int rc = st.Step();
  if (rc == SQLITE_DONE) return absl::NotFoundError(absl::StrCat("job_id: no job '", id, "'"));
  if (rc != SQLITE_ROW) return st.Error("get job");
  return JobFromRow(st);
}

std::optional<StoredJob> JobStore::FindByRequestId(const std::string& request_id) {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt st(db_, "SELECT seq, job FROM jobs WHERE request_id = ?");
  if (!st.ok()) return std::nullopt;
  st.BindText(1, request_id);
  if (st.Step() != SQLITE_ROW) return std::nullopt;
  auto j = JobFromRow(st);
  if (!j.ok()) return std::nullopt;
  return *j;
}

absl::StatusOr<std::vector<StoredJob>> JobStore::ListJobs() {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt st(db_, "SELECT seq, job FROM jobs ORDER BY created DESC, seq DESC");
  if (!st.ok()) return st.Error("prepare list");
  std::vector<StoredJob> out;
  int rc;
  while ((rc = st.Step()) == SQLITE_ROW) {
    LASERD_ASSIGN_OR_RETURN(StoredJob j, JobFromRow(st));
    out.push_back(std::move(j));
  }
  if (rc != SQLITE_DONE) return st.Error("list jobs");
  return out;
}

absl::Status JobStore::DeleteJob(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  LASERD_RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
  bool existed = false;
  {
    Stmt d1(db_, "DELETE FROM jobs WHERE id = ?");
    if (!d1.ok()) return Abandon(d1.Error("prepare delete job"));
    d1.BindText(1, id);
    if (d1.Step() != SQLITE_DONE) return Abandon(d1.Error("delete job"));
    existed = sqlite3_changes(db_) > 0;
  }
  {
    Stmt d2(db_, "DELETE FROM results WHERE job_id = ?");
    if (!d2.ok()) return Abandon(d2.Error("prepare delete results"));
    d2.BindText(1, id);
    if (d2.Step() != SQLITE_DONE) return Abandon(d2.Error("delete results"));
  }
  {
    Stmt d3(db_, "DELETE FROM example_outputs WHERE job_id = ?");
    if (!d3.ok()) return Abandon(d3.Error("prepare delete example outputs"));
    d3.BindText(1, id);
    if (d3.Step() != SQLITE_DONE) return Abandon(d3.Error("delete example outputs"));
  }
  LASERD_RETURN_IF_ERROR(Commit());
  if (!existed) return absl::NotFoundError(absl::StrCat("job_id: no job '", id, "'"));
  return absl::OkStatus();
}

absl::Status JobStore::AppendResult(const pb::Result& r, const pb::Job& updated,
                                    const pb::ExampleOutputs* outputs) {
  std::lock_guard<std::mutex> lock(mu_);
  LASERD_RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
  {
    Stmt up(db_, "UPDATE jobs SET state = ?, progress = ?, job = ? WHERE id = ?");
    if (!up.ok()) return Abandon(up.Error("prepare update job"));
    up.Bind(1, int64_t{updated.state()});
    up.Bind(2, Bytes(updated.progress()));
    up.Bind(3, Bytes(updated));
    up.BindText(4, updated.id());
    if (up.Step() != SQLITE_DONE) return Abandon(up.Error("update job"));
    if (sqlite3_changes(db_) == 0) {
      return Abandon(absl::NotFoundError(absl::StrCat("job ", updated.id(), " was deleted")));
    }
  }
  {
    Stmt ins(db_, "INSERT INTO results (job_id, idx, plan_index, result) VALUES (?, ?, ?, ?)");
    if (!ins.ok()) return Abandon(ins.Error("prepare insert result"));
    ins.BindText(1, r.job_id());
    ins.Bind(2, r.index());
    ins.Bind(3, r.plan_index());
    ins.Bind(4, Bytes(r));
    const int rc = ins.Step();
    if (rc == SQLITE_CONSTRAINT) {
      return Abandon(absl::AlreadyExistsError(absl::StrCat("job ", r.job_id(), ": result ",
                                                           r.index(), " / plan_index ",
                                                           r.plan_index(), " is stored already")));
    }
    if (rc != SQLITE_DONE) return Abandon(ins.Error("insert result"));
  }
  if (outputs != nullptr) {
    LASERD_RETURN_IF_ERROR(PutExampleOutputsLocked(r.job_id(), r.index(), *outputs));
  }
  return Commit();
}

absl::StatusOr<std::vector<pb::Result>> JobStore::Results(const std::string& job_id, int64_t from) {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt st(db_, "SELECT result FROM results WHERE job_id = ? AND idx >= ? ORDER BY idx");
  st.BindText(1, job_id);
  st.Bind(2, from);
  std::vector<pb::Result> out;
  int rc;
  while ((rc = st.Step()) == SQLITE_ROW) {
    pb::Result r;
    if (!r.ParseFromString(st.Blob(0))) {
      return absl::DataLossError(absl::StrCat("job store: a result of ", job_id, " is corrupt"));
    }
    out.push_back(std::move(r));
  }
  if (rc != SQLITE_DONE) return st.Error("read results");
  return out;
}

absl::StatusOr<std::set<int64_t>> JobStore::PlanIndices(const std::string& job_id) {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt st(db_, "SELECT plan_index FROM results WHERE job_id = ?");
  st.BindText(1, job_id);
  std::set<int64_t> out;
  int rc;
  while ((rc = st.Step()) == SQLITE_ROW) out.insert(st.Int(0));
  if (rc != SQLITE_DONE) return st.Error("read plan indices");
  return out;
}

absl::StatusOr<int64_t> JobStore::DatasetStoreBytesLocked() {
  // length() of a BLOB reads its size from the record header, not its bytes.
  Stmt st(db_, "SELECT COALESCE(SUM(length(bytes)), 0) FROM datasets");
  if (st.Step() != SQLITE_ROW) return st.Error("size of the datasets");
  return st.Int(0);
}

absl::StatusOr<int64_t> JobStore::DatasetStoreBytes() {
  std::lock_guard<std::mutex> lock(mu_);
  return DatasetStoreBytesLocked();
}

absl::Status JobStore::PutDataset(const pb::Dataset& meta, const std::string& bytes,
                                  int64_t quota_bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  if (quota_bytes > 0) {
    Stmt ex(db_, "SELECT 1 FROM datasets WHERE id = ?");
    ex.BindText(1, meta.id());
    const int rc = ex.Step();
    if (rc == SQLITE_ROW) return absl::OkStatus();  // stored already: takes no space
    if (rc != SQLITE_DONE) return ex.Error("find dataset");
    LASERD_ASSIGN_OR_RETURN(const int64_t stored, DatasetStoreBytesLocked());
    const int64_t size = static_cast<int64_t>(bytes.size());
    if (stored + size > quota_bytes) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "dataset: storing these ", size, " bytes would take the stored datasets from ", stored,
          " to ", stored + size, " bytes, over this server's quota of ", quota_bytes,
          " bytes (--dataset-quota-bytes); delete datasets that are no longer needed "
          "(DeleteDataset)"));
    }
  }
  Stmt st(db_,
          "INSERT OR IGNORE INTO datasets (id, bytes, record_count, created, meta) "
          "VALUES (?, ?, ?, ?, ?)");
  st.BindText(1, meta.id());
  st.Bind(2, bytes);
  st.Bind(3, meta.example_count());
  st.Bind(4, int64_t{meta.create_time().seconds()} * 1000000000 + meta.create_time().nanos());
  st.Bind(5, Bytes(meta));
  if (st.Step() != SQLITE_DONE) return st.Error("insert dataset");
  return absl::OkStatus();
}

absl::StatusOr<pb::Dataset> JobStore::GetDataset(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt st(db_, "SELECT meta FROM datasets WHERE id = ?");
  st.BindText(1, id);
  if (st.Step() != SQLITE_ROW) {
    return absl::NotFoundError(absl::StrCat("dataset_id: no dataset '", id, "'"));
  }
  pb::Dataset d;
  d.ParseFromString(st.Blob(0));
  return d;
}

absl::StatusOr<std::string> JobStore::DatasetBytes(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt st(db_, "SELECT bytes FROM datasets WHERE id = ?");
  st.BindText(1, id);
  if (st.Step() != SQLITE_ROW) {
    return absl::NotFoundError(absl::StrCat("dataset_id: no dataset '", id, "'"));
  }
  return st.Blob(0);
}

absl::Status JobStore::DeleteDataset(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> users;
  {
    Stmt st(db_, "SELECT id, spec FROM jobs WHERE state IN (?, ?) ORDER BY seq");
    if (!st.ok()) return st.Error("prepare dataset users");
    st.Bind(1, int64_t{pb::JOB_STATE_QUEUED});
    st.Bind(2, int64_t{pb::JOB_STATE_RUNNING});
    int rc;
    while ((rc = st.Step()) == SQLITE_ROW) {
      pb::SweepSpec spec;
      if (!spec.ParseFromString(st.Blob(1))) {
        return absl::DataLossError("job store: the spec of a queued or running job is corrupt");
      }
      if (spec.dataset().dataset_id() == id) {
        const auto* t = reinterpret_cast<const char*>(sqlite3_column_text(st.get(), 0));
        users.push_back(t ? t : "");
      }
    }
    if (rc != SQLITE_DONE) return st.Error("find dataset users");
  }
  if (!users.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("dataset ", id, " is used by ", users.size(), " queued or running job(s): ",
                     absl::StrJoin(users, ", "), "; cancel or delete them first"));
  }
  Stmt d(db_, "DELETE FROM datasets WHERE id = ?");
  d.BindText(1, id);
  if (d.Step() != SQLITE_DONE) return d.Error("delete dataset");
  if (sqlite3_changes(db_) == 0) {
    return absl::NotFoundError(absl::StrCat("dataset_id: no dataset '", id, "'"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<pb::Dataset>> JobStore::ListDatasets() {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt st(db_, "SELECT meta FROM datasets ORDER BY created DESC, id");
  std::vector<pb::Dataset> out;
  int rc;
  while ((rc = st.Step()) == SQLITE_ROW) {
    pb::Dataset d;
    d.ParseFromString(st.Blob(0));
    out.push_back(std::move(d));
  }
  if (rc != SQLITE_DONE) return st.Error("list datasets");
  return out;
}

}  // namespace laserd::server
