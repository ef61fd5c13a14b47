// Several resident replicas of one model in one process (laserd --devices;
// docs/sweep.md "Several devices"). Each replica is a whole model::LoadedModel
// on its own kernels::Backend: its own weights in that device's memory, its
// own prefix caches. engine/laser/sweep.h's SweepRunner spreads a sweep's
// matrices over them.
#ifndef LASERD_ENGINE_LASER_REPLICAS_H_
#define LASERD_ENGINE_LASER_REPLICAS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/model/loaded_model.h"
#include "engine/model/model.h"

namespace laserd::laser {

// A comma-separated device list: each entry is a device string as
// kernels::MakeBackend takes it (auto|cpu|cuda[:N][/fp32|/bf16|/fp16]), or a
// bare GPU index N meaning cuda:N ("0,1" = cuda:0,cuda:1). Every entry must be
// valid (kernels::ParseDeviceSpec) and all must name the same kind of device
// with the same resident dtype, so that every replica computes the same bits
// (a mixed list is INVALID_ARGUMENT). Returns the entries, shorthands expanded.
absl::StatusOr<std::vector<std::string>> ParseDeviceList(const std::string& list);

// What a replica is resident on, for logs and ModelInfo: "cpu", or "cuda:N"
// with "/bf16" or "/fp16" when the weights are kept so.
std::string ReplicaDeviceName(const std::string& device, const model::LoadedModel& lm);

// Loads one replica per device (in parallel threads; each as model::LoadModel
// does). When two or more replicas are on the CPU and OPENBLAS_NUM_THREADS is
// not set, OpenBLAS gets max(1, cores / CPU replicas) threads, so the
// replicas' GEMMs share the cores instead of oversubscribing them (OpenBLAS's
// thread count is one setting per process). An error names the device.
absl::StatusOr<std::vector<model::LoadedModel>> LoadReplicas(
    const std::string& model_path, const std::vector<std::string>& devices,
    const std::string& tokenizer_path = "");

// The models of `replicas`, in order (for SweepRunner::Create).
std::vector<model::Model*> ReplicaModels(const std::vector<model::LoadedModel>& replicas);

}  // namespace laserd::laser

#endif  // LASERD_ENGINE_LASER_REPLICAS_H_
