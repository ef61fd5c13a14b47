// laserctl spectrum: a matrix's singular values and its Marchenko-Pastur rank.
#include <iostream>
#include <memory>
#include <string>

#include "absl/strings/str_format.h"
#include "client/commands.h"
#include "client/failure.h"
#include "client/laserctl_core.h"

namespace laserd::client {
namespace {

namespace pb = ::laser::v1;

int Spectrum(Connection& conn, const std::string& type, int layer, bool values, bool json) {
  pb::GetSpectrumRequest req;
  req.set_matrix_type(type);
  req.set_layer(layer);
  pb::Spectrum s;
  auto ctx = conn.Context();
  auto st = conn.models().GetSpectrum(ctx.get(), req, &s);
  if (!st.ok()) return FailRpc("spectrum", st);
  if (json) {
    std::cout << JsonLine(s) << "\n";
    return kExitOk;
  }
  const auto& mp = s.marchenko_pastur();
  std::cout << s.matrix_type() << " layer " << s.layer() << ": " << s.rows() << " x " << s.cols()
            << ", max rank " << s.max_rank() << "\n"
            << absl::StrFormat("frobenius norm:   %.6g\n", s.frobenius_norm());
  if (s.singular_values_size() > 0) {
    std::cout << absl::StrFormat("singular values:  %.6g (max) .. %.6g (min)\n",
                                 s.singular_values(0),
                                 s.singular_values(s.singular_values_size() - 1));
  }
  std::cout << absl::StrFormat(
      "marchenko-pastur: sigma %.6g, beta %.6g, threshold %.6g\n"
      "suggested rank:   %d (rho %.4f), relative error %.4f\n",
      mp.sigma(), mp.beta(), mp.threshold(), mp.suggested_rank(), mp.suggested_rho(),
      mp.relative_error());
  if (values) {
    for (double v : s.singular_values()) std::cout << absl::StrFormat("%.9g\n", v);
  }
  return kExitOk;
}

}  // namespace

void AddSpectrumCommand(CLI::App& app, const ConnectionOptions* conn, Runner* run) {
  struct Flags {
    std::string type;
    int layer = 0;
    bool values = false;
    bool json = false;
  };
  auto f = std::make_shared<Flags>();
  auto* spectrum =
      app.add_subcommand("spectrum", "Singular values and Marchenko-Pastur rank of a matrix");
  spectrum->add_option("type", f->type, "Matrix type, e.g. mlp.in")->required();
  spectrum->add_option("layer", f->layer, "0-based layer")->required();
  spectrum->add_flag("--values", f->values, "Print every singular value");
  spectrum->add_flag("--json", f->json, "The Spectrum as JSON");
  RunConnected(spectrum, conn, run,
               [f](Connection& c) { return Spectrum(c, f->type, f->layer, f->values, f->json); });
}

}  // namespace laserd::client
