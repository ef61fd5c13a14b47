// Output shared by laserctl's commands (beside laserctl_core's result tables):
// a message as indented JSON, a UTC timestamp, and the summary of a job that
// `get` and `submit` print.
#ifndef LASERD_CLIENT_OUTPUT_H_
#define LASERD_CLIENT_OUTPUT_H_

#include <string>

#include "google/protobuf/message.h"
#include "google/protobuf/timestamp.pb.h"
#include "laser/v1/sweep.pb.h"

namespace laserd::client {

// Protobuf JSON with the proto field names, indented.
std::string PrettyJson(const google::protobuf::Message& m);
// "2024-05-01T12:00:00Z"; "-" for an unset timestamp.
std::string Timestamp(const google::protobuf::Timestamp& t);
// The human summary of a job (id, state, progress, baseline, best, error, labels) on stdout.
void PrintJobSummary(const ::laser::v1::Job& j);

}  // namespace laserd::client

#endif  // LASERD_CLIENT_OUTPUT_H_
