// Errors of the domain: an absl::Status whose payload lists every problem of a
// request, each naming its field by the domain's own identifiers. The
// transport gives the fields its names and turns the list into
// google.rpc.BadRequest (api/field_paths.h, api/grpc_status.h).
#pragma once

#include <absl/status/status.h>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace segments::domain {

// The fields of the requests the domain checks.
enum class Field {
  kUserId,
  kUserIds,
  kStatus,
  kSlug,
  kSegment,
  kSegmentsToAdd,
  kSegmentsToRemove,
  kSegmentSlug,
  kTtlSeconds,
  kTtlDeadline,
  kPercentToFill,
  kDescription,
  kIncludeSegments,
  kExcludeSegments,
  kAutoTtlSeconds,
  kPageSize,
  kPageToken,
  kMonth,
  kYear,
  kFrom,
  kTo,
  kAt,
  kStep,
  kSegments,
  // Not a field of a message: the call's Idempotency-Key (gRPC metadata).
  kIdempotencyKey,
};

// The domain's name of `field`, e.g. "segments_to_add", for logs.
std::string_view FieldName(Field field);

// A field, optionally an item of it (a list) and a member of that item, e.g.
// segments_to_add[1].segment_slug. The empty path is the request as a whole.
struct FieldPath {
  FieldPath() = default;
  FieldPath(Field f) : field(f) {}  // NOLINT(google-explicit-constructor)
  FieldPath(Field f, size_t i) : field(f), index(i) {}
  FieldPath(Field f, size_t i, Field m) : field(f), index(i), member(m) {}

  // `leaf` as the member of this path, which has none yet; `leaf` alone when
  // this is the whole request.
  FieldPath Member(Field leaf) const;

  bool operator==(const FieldPath&) const = default;

  std::optional<Field> field;
  std::optional<size_t> index;
  std::optional<Field> member;
};

// `path` written as "field[index].member" with `name` for each field; "" for
// the whole request.
std::string FormatPath(const FieldPath& path, std::string_view (*name)(Field));

// Text for humans that may name fields, e.g. "segment \"A\" is already listed
// at <path>": literal text and paths, which the transport names.
class Description {
 public:
  using Part = std::variant<std::string, FieldPath>;

  Description() = default;
  Description(std::string text);                                     // NOLINT(google-explicit-constructor)
  Description(const char* text) : Description(std::string(text)) {}  // NOLINT(google-explicit-constructor)

  // Text (strings) and paths (FieldPath or Field) in order.
  template <typename... Parts>
  static Description Of(const Parts&... parts) {
    Description out;
    (out.Append(parts), ...);
    return out;
  }

  Description& Append(std::string_view text);
  Description& Append(const FieldPath& path);

  const std::vector<Part>& parts() const { return parts_; }
  bool operator==(const Description&) const = default;

 private:
  std::vector<Part> parts_;  // no two texts in a row, no empty text
};

// `description` with its paths written by FormatPath(path, name).
std::string FormatDescription(const Description& description, std::string_view (*name)(Field));

struct FieldViolation {
  FieldPath field;          // e.g. segments_to_add[1].segment_slug
  Description description;  // e.g. "segment \"X\" does not exist"

  bool operator==(const FieldViolation&) const = default;
};

// A status of `code` carrying `violations`. Its message joins them as
// "field: description; ..." with the domain's names, for logs; clients see
// the transport's. `violations` must not be empty.
absl::Status ErrorWithViolations(absl::StatusCode code, const std::vector<FieldViolation>& violations);

// Shorthand for one violation.
absl::Status FieldError(absl::StatusCode code, FieldPath field, Description description);

// The violations carried by `status`; empty when it carries none.
std::vector<FieldViolation> ViolationsIn(const absl::Status& status);

}  // namespace segments::domain
