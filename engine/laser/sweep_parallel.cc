// SweepRunner::Run over several replicas (engine/laser/sweep.h, "Several
// replicas"): one worker thread per replica takes the shard's matrices from a
// queue in plan order; results are reported in plan order on the calling
// thread.
#include <condition_variable>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "engine/laser/svd_batch.h"
#include "engine/laser/sweep.h"

namespace laserd::laser {

absl::Status SweepRunner::RunParallel(
    const std::set<int64_t>& skip,
    const std::function<absl::Status(const SweepResult&)>& on_result) {
  // The work: the shard's matrices with something to do, in plan order; the
  // results have one slot each, in the order they are reported.
  struct Item {
    const PlanMatrix* m;
    std::vector<const Intervention*> todo;
    size_t first_slot;
  };
  std::vector<Item> items;
  std::vector<size_t> item_of_slot;
  for (const PlanMatrix& m : plan_) {
    if (!InShard(m)) continue;
    Item it{&m, {}, item_of_slot.size()};
    for (const Intervention& iv : m.interventions) {
      if (!skip.count(iv.plan_index)) it.todo.push_back(&iv);
    }
    if (it.todo.empty()) continue;
    item_of_slot.insert(item_of_slot.end(), it.todo.size(), items.size());
    items.push_back(std::move(it));
  }
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::optional<SweepResult>> slots(item_of_slot.size());
  std::vector<std::optional<absl::Status>> failed(items.size());
  // Items taken by a worker or claimed by one for a batched decomposition.
  std::vector<bool> taken(items.size(), false);
  size_t next_item = 0;
  bool stop = false;

  // One worker per replica: the next matrix in plan order whenever it is free
  // (or the next of those it claimed for its batched decompositions, when that
  // comes first), so each replica's matrices ascend in layer order and its
  // cache only moves forward.
  auto work = [&](size_t replica) {
    SweepRunner* run = replica == 0 ? this : replicas_[replica - 1].get();
    run->model_->backend()->BindThread();
    run->batcher_->Clear();
    std::set<size_t> claimed;
    for (;;) {
      size_t idx;
      {
        std::lock_guard<std::mutex> lock(mu);
        while (next_item < items.size() && taken[next_item]) ++next_item;
        if (stop || (next_item == items.size() && claimed.empty())) break;
        if (!claimed.empty() && (next_item == items.size() || *claimed.begin() < next_item)) {
          idx = *claimed.begin();
          claimed.erase(claimed.begin());
        } else {
          idx = next_item++;
          taken[idx] = true;
        }
      }
      const Item& it = items[idx];
      // The later same-shaped matrices no worker has taken, claimed for this one.
      auto more = [&](const PlanMatrix& m, size_t max) {
        std::vector<const PlanMatrix*> out;
        std::lock_guard<std::mutex> lock(mu);
        for (size_t j = idx + 1; j < items.size() && out.size() < max; ++j) {
          if (!taken[j] && items[j].m->rows == m.rows && items[j].m->cols == m.cols) {
            taken[j] = true;
            claimed.insert(j);
            out.push_back(items[j].m);
          }
        }
        return out;
      };
      absl::Status st = run->RunMatrix(*it.m, it.todo, replica, more,
                                       [&](SweepResult res, size_t i) -> absl::Status {
                                         std::lock_guard<std::mutex> lock(mu);
                                         if (stop) return absl::CancelledError("sweep stopped");
                                         slots[it.first_slot + i] = std::move(res);
                                         cv.notify_all();
                                         return absl::OkStatus();
                                       });
      if (!st.ok()) {
        std::lock_guard<std::mutex> lock(mu);
        if (!stop) failed[idx] = st;
        // The matrices it claimed fail with it (the reporting thread stops at
        // the first failure in plan order).
        for (size_t j : claimed) {
          if (!stop && !failed[j].has_value()) failed[j] = st;
        }
        cv.notify_all();
        break;
      }
    }
    run->batcher_->Clear();
    run->Unapply();
  };
  std::vector<std::thread> workers;
  for (size_t r = 0; r < replica_count(); ++r) workers.emplace_back(work, r);

  // Report in plan order on this thread; a failure is reported where it
  // happened in that order (the results before it are reported first).
  absl::Status status = absl::OkStatus();
  for (size_t s = 0; s < slots.size() && status.ok(); ++s) {
    std::optional<SweepResult> res;
    {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return slots[s].has_value() || failed[item_of_slot[s]].has_value(); });
      if (slots[s].has_value()) {
        res = std::move(slots[s]);
        slots[s].reset();
      } else {
        status = *failed[item_of_slot[s]];
        break;
      }
    }
    status = on_result(*res);
  }
  {
    std::lock_guard<std::mutex> lock(mu);
    stop = true;
  }
  for (std::thread& t : workers) t.join();
  return status;
}

}  // namespace laserd::laser
