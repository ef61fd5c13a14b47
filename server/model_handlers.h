// The logic of laser.v1.ModelService: the resident model's description with
// the host's memory now, and the singular-value spectrum of one of its
// matrices (cached; read between two interventions of a running sweep).
#ifndef LASERD_SERVER_MODEL_HANDLERS_H_
#define LASERD_SERVER_MODEL_HANDLERS_H_

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "laser/v1/model.pb.h"
#include "server/resident_model.h"

namespace laserd::server {

class ModelHandlers {
 public:
  explicit ModelHandlers(ResidentModel& model) : model_(model) {}

  absl::StatusOr<::laser::v1::ModelInfo> DescribeModel();
  absl::StatusOr<::laser::v1::Spectrum> GetSpectrum(const ::laser::v1::GetSpectrumRequest& req);

 private:
  ResidentModel& model_;
  std::mutex spectra_mu_;
  std::map<std::pair<std::string, int64_t>, ::laser::v1::Spectrum> spectra_;
};

}  // namespace laserd::server

#endif  // LASERD_SERVER_MODEL_HANDLERS_H_
