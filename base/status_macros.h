// Status plumbing shared by every layer of laserd (kernels, engine, server,
// client): early return on an error absl::Status or absl::StatusOr.
//
//   LASERD_RETURN_IF_ERROR(DoThing());
//   LASERD_ASSIGN_OR_RETURN(auto value, ComputeValue());
//   LASERD_ASSIGN_OR_RETURN(existing, ComputeValue());
//
// Both work in any function whose return type is constructible from
// absl::Status (absl::Status itself or any absl::StatusOr<T>). Plain C++17 so
// that CUDA translation units may include it.
#ifndef LASERD_BASE_STATUS_MACROS_H_
#define LASERD_BASE_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define LASERD_RETURN_IF_ERROR(expr)                                                         \
  do {                                                                                       \
    if (::absl::Status laserd_status_ = (expr); !laserd_status_.ok()) return laserd_status_; \
  } while (0)

#define LASERD_STATUS_CONCAT_INNER_(a, b) a##b
#define LASERD_STATUS_CONCAT_(a, b) LASERD_STATUS_CONCAT_INNER_(a, b)

#define LASERD_ASSIGN_OR_RETURN(lhs, expr) \
  LASERD_ASSIGN_OR_RETURN_IMPL_(LASERD_STATUS_CONCAT_(laserd_statusor_, __LINE__), lhs, expr)

#define LASERD_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                                  \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = *std::move(statusor)

#endif  // LASERD_BASE_STATUS_MACROS_H_
