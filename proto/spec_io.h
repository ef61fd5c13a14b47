// Sweep spec files: a laser.v1.SweepSpec written as protobuf JSON or as YAML
// with the same field names (docs/sweep.md). Shared by laserd (server/) and
// laserctl (client/); knows only the API messages.
#ifndef LASERD_PROTO_SPEC_IO_H_
#define LASERD_PROTO_SPEC_IO_H_

#include <string>

#include "absl/status/statusor.h"
#include "laser/v1/sweep.pb.h"

namespace laserd::proto {

// Parses a spec from text. Text whose first non-blank character is '{' is
// JSON; anything else is YAML, converted to JSON first: plain scalars that
// read as YAML 1.2 core-schema booleans, nulls, integers or floats become
// JSON booleans, nulls and numbers, every other scalar (and every quoted one)
// a string. Unknown fields are errors. INVALID_ARGUMENT names `source` and,
// for YAML syntax errors, the line and column. YAML is read by libyaml;
// aliases may expand a document to at most 100,000 nodes, 64 levels deep.
absl::StatusOr<::laser::v1::SweepSpec> ParseSweepSpecText(const std::string& text,
                                                          const std::string& source);

// Reads and parses a spec file (NOT_FOUND when it cannot be read).
absl::StatusOr<::laser::v1::SweepSpec> ReadSweepSpecFile(const std::string& path);

// The YAML document as JSON text (the conversion above), for tests and tools.
absl::StatusOr<std::string> YamlToJson(const std::string& yaml, const std::string& source);

}  // namespace laserd::proto

#endif  // LASERD_PROTO_SPEC_IO_H_
