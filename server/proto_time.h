// Wall-clock time and durations as protobuf messages, for the times a job and
// its results record.
#ifndef LASERD_SERVER_PROTO_TIME_H_
#define LASERD_SERVER_PROTO_TIME_H_

#include <chrono>
#include <cstdint>

#include "google/protobuf/duration.pb.h"
#include "google/protobuf/timestamp.pb.h"
#include "google/protobuf/util/time_util.h"

namespace laserd::server {

// Now, with nanoseconds: TimeUtil::GetCurrentTime() has whole seconds in this
// protobuf, and events within one second must keep their order.
inline google::protobuf::Timestamp ProtoNow() {
  return google::protobuf::util::TimeUtil::NanosecondsToTimestamp(
      std::chrono::duration_cast<std::chrono::nanoseconds>(
          std::chrono::system_clock::now().time_since_epoch())
          .count());
}

inline google::protobuf::Duration ProtoSeconds(double s) {
  return google::protobuf::util::TimeUtil::NanosecondsToDuration(static_cast<int64_t>(s * 1e9));
}

}  // namespace laserd::server

#endif  // LASERD_SERVER_PROTO_TIME_H_
