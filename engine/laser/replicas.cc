#include "engine/laser/replicas.h"

#include <cblas.h>

#include <cstdlib>
#include <optional>
#include <thread>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "kernels/ops.h"
#include "spdlog/spdlog.h"

namespace laserd::laser {

absl::StatusOr<std::vector<std::string>> ParseDeviceList(const std::string& list) {
  std::vector<std::string> out;
  std::optional<kernels::DeviceSpec> first;
  const std::vector<std::string> parts = absl::StrSplit(list, ',');
  for (size_t i = 0; i < parts.size(); ++i) {
    std::string d(absl::StripAsciiWhitespace(parts[i]));
    if (d.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--devices: entry ", i, " of \"", list, "\" is empty"));
    }
    if (d.find_first_not_of("0123456789") == std::string::npos) d = "cuda:" + d;
    auto spec = kernels::ParseDeviceSpec(d);
    if (!spec.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--devices: entry ", i, ": ", spec.status().message()));
    }
    if (!first) {
      first = *spec;
    } else if (spec->kind != first->kind || spec->dtype != first->dtype) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--devices: \"", d, "\" is not the same kind of device as \"", out[0],
          "\"; every replica must be the same backend with the same dtype, so that the results "
          "do not depend on which replica ran which matrix"));
    }
    out.push_back(d);
  }
  return out;
}

std::string ReplicaDeviceName(const std::string& device, const model::LoadedModel& lm) {
  if (lm.backend->kind() != kernels::DeviceKind::kCuda) return lm.backend->name();
  auto spec = kernels::ParseDeviceSpec(device);
  if (!spec.ok()) return lm.backend->name();
  std::string name = absl::StrCat("cuda:", spec->index);
  if (spec->dtype != kernels::DType::kF32) absl::StrAppend(&name, "/", DTypeName(spec->dtype));
  return name;
}

absl::StatusOr<std::vector<model::LoadedModel>> LoadReplicas(
    const std::string& model_path, const std::vector<std::string>& devices,
    const std::string& tokenizer_path) {
  if (devices.empty()) return absl::InvalidArgumentError("--devices: no device given");
  std::vector<absl::StatusOr<model::LoadedModel>> loaded;
  for (size_t i = 0; i < devices.size(); ++i) loaded.emplace_back(absl::UnknownError("not loaded"));
  {
    std::vector<std::thread> threads;
    for (size_t i = 0; i < devices.size(); ++i) {
      threads.emplace_back(
          [&, i] { loaded[i] = model::LoadModel(model_path, devices[i], tokenizer_path); });
    }
    for (std::thread& t : threads) t.join();
  }
  std::vector<model::LoadedModel> out;
  int cpu = 0;
  for (size_t i = 0; i < devices.size(); ++i) {
    if (!loaded[i].ok()) {
      return absl::Status(
          loaded[i].status().code(),
          absl::StrCat("replica ", i, " (", devices[i], "): ", loaded[i].status().message()));
    }
    out.push_back(*std::move(loaded[i]));
    if (out[i].backend->kind() != out[0].backend->kind()) {
      // Possible only with "auto", which may resolve differently per replica.
      return absl::FailedPreconditionError(
          absl::StrCat("--devices: replica ", i, " (", devices[i], ") resolved to ",
                       out[i].backend->name(), " but replica 0 to ", out[0].backend->name()));
    }
    cpu += out[i].backend->kind() == kernels::DeviceKind::kCpu;
  }
  // The caller goes on with the first replica (baseline, composition).
  out[0].backend->BindThread();
  if (cpu >= 2) {
    const char* env = std::getenv("OPENBLAS_NUM_THREADS");
    if (env != nullptr && *env) {
      spdlog::info("{} CPU replicas; OpenBLAS threads from OPENBLAS_NUM_THREADS={}", cpu, env);
    } else {
      const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
      const int threads = std::max(1, cores / cpu);
      openblas_set_num_threads(threads);
      spdlog::info("{} CPU replicas on {} cores: {} OpenBLAS thread{} each", cpu, cores, threads,
                   threads == 1 ? "" : "s");
    }
  }
  return out;
}

std::vector<model::Model*> ReplicaModels(const std::vector<model::LoadedModel>& replicas) {
  std::vector<model::Model*> out;
  for (const model::LoadedModel& lm : replicas) out.push_back(lm.model.get());
  return out;
}

}  // namespace laserd::laser
