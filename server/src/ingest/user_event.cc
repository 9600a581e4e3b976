#include "ingest/user_event.h"

#include <absl/container/flat_hash_set.h>
#include <absl/strings/str_cat.h>
#include <fmt/format.h>

#include <algorithm>
#include <optional>

#include "common/status_macros.h"

namespace segments::ingest {
namespace {

// Reads the one JSON object of an event (RFC 8259) and takes the user id
// from it, checking the rest for syntax only. Hand-written rather than a
// protobuf JSON parse because the id may be a JSON integer, and protobuf
// reads numbers into a string field not at all, and into Value as a double
// that cannot hold every id up to 2^63-1.
class EventReader {
 public:
  explicit EventReader(std::string_view text) : text_(text) {}

  absl::StatusOr<domain::UserId> Read() {
    SkipSpace();
    if (!Consume('{')) return NotAnEvent("the value is not a JSON object");
    std::optional<absl::StatusOr<domain::UserId>> user;
    SkipSpace();
    if (!Consume('}')) {
      do {
        SkipSpace();
        if (!Consume('"')) return NotAnEvent("expected a member name");
        ASSIGN_OR_RETURN(const std::string name, ReadString());
        SkipSpace();
        if (!Consume(':')) return NotAnEvent("expected ':'");
        SkipSpace();
        // The name in the proto (user_id) is accepted too, as the protobuf
        // parser used before did.
        if (name == "userID" || name == "user_id") {
          if (user) return absl::InvalidArgumentError("userID: given twice");
          RETURN_IF_ERROR(ReadUserId(user));
        } else {
          RETURN_IF_ERROR(SkipValue(0));
        }
        SkipSpace();
      } while (Consume(','));
      if (!Consume('}')) return NotAnEvent("expected ',' or '}'");
    }
    SkipSpace();
    if (pos_ != text_.size()) return NotAnEvent("text after the object");
    if (!user) return absl::InvalidArgumentError("userID: is required");
    return *std::move(user);
  }

 private:
  static constexpr int kMaxDepth = 64;

  absl::Status NotAnEvent(std::string_view why) const {
    return absl::InvalidArgumentError(fmt::format("value is not a JSON user event: {} at byte {}", why, pos_));
  }

  bool AtEnd() const { return pos_ >= text_.size(); }
  char Peek() const { return AtEnd() ? '\0' : text_[pos_]; }
  bool Consume(char c) {
    if (AtEnd() || text_[pos_] != c) return false;
    ++pos_;
    return true;
  }
  void SkipSpace() {
    while (!AtEnd() && (Peek() == ' ' || Peek() == '\t' || Peek() == '\n' || Peek() == '\r')) ++pos_;
  }

  // Reads the member's value into `user`: the id, or why it is not one (a
  // string holds the id's text; an integer literal is that text too: 1000
  // is "1000"). The status returned says why the JSON is not JSON.
  absl::Status ReadUserId(std::optional<absl::StatusOr<domain::UserId>>& user) {
    auto id_of = [](std::string_view text) -> absl::StatusOr<domain::UserId> {
      auto id = domain::UserId::Parse(text);
      if (!id.ok()) return absl::InvalidArgumentError(absl::StrCat("userID: ", id.status().message()));
      return id;
    };
    if (Consume('"')) {
      ASSIGN_OR_RETURN(const std::string text, ReadString());
      user = id_of(text);
    } else if (Peek() == '-' || (Peek() >= '0' && Peek() <= '9')) {
      ASSIGN_OR_RETURN(const std::string_view number, ReadNumber());
      user = id_of(number);
    } else if (text_.substr(pos_, 4) == "null") {
      pos_ += 4;
      user = absl::InvalidArgumentError("userID: is required");
    } else {
      RETURN_IF_ERROR(SkipValue(0));
      user = absl::InvalidArgumentError("userID: must be a string or an integer");
    }
    return absl::OkStatus();
  }

  absl::Status SkipValue(int depth) {
    if (depth > kMaxDepth) return NotAnEvent("nested too deeply");
    const char c = Peek();
    if (c == '"') {
      ++pos_;
      return ReadString().status();
    }
    if (c == '-' || (c >= '0' && c <= '9')) return ReadNumber().status();
    if (c == '{' || c == '[') {
      ++pos_;
      const char close = c == '{' ? '}' : ']';
      SkipSpace();
      if (Consume(close)) return absl::OkStatus();
      do {
        SkipSpace();
        if (c == '{') {
          if (!Consume('"')) return NotAnEvent("expected a member name");
          RETURN_IF_ERROR(ReadString().status());
          SkipSpace();
          if (!Consume(':')) return NotAnEvent("expected ':'");
          SkipSpace();
        }
        RETURN_IF_ERROR(SkipValue(depth + 1));
        SkipSpace();
      } while (Consume(','));
      if (!Consume(close)) return NotAnEvent(close == '}' ? "expected ',' or '}'" : "expected ',' or ']'");
      return absl::OkStatus();
    }
    for (std::string_view word : {"true", "false", "null"}) {
      if (text_.substr(pos_, word.size()) == word) {
        pos_ += word.size();
        return absl::OkStatus();
      }
    }
    return NotAnEvent("expected a value");
  }

  // A number's literal, as JSON's grammar has it.
  absl::StatusOr<std::string_view> ReadNumber() {
    const size_t start = pos_;
    auto digits = [&] {
      const size_t from = pos_;
      while (Peek() >= '0' && Peek() <= '9') ++pos_;
      return pos_ > from;
    };
    Consume('-');
    if (Consume('0')) {
      if (Peek() >= '0' && Peek() <= '9') return NotAnEvent("a number with a leading zero");
    } else if (!digits()) {
      return NotAnEvent("a malformed number");
    }
    if (Consume('.') && !digits()) return NotAnEvent("a malformed number");
    if (Consume('e') || Consume('E')) {
      if (!Consume('+')) Consume('-');
      if (!digits()) return NotAnEvent("a malformed number");
    }
    return text_.substr(start, pos_ - start);
  }

  // A string's content, after its opening quote, with escapes decoded.
  absl::StatusOr<std::string> ReadString() {
    std::string out;
    while (!AtEnd()) {
      const char c = text_[pos_++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) return NotAnEvent("a control character in a string");
      if (c != '\\') {
        out += c;
        continue;
      }
      if (AtEnd()) break;
      const char e = text_[pos_++];
      switch (e) {
        case '"':
        case '\\':
        case '/':
          out += e;
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          ASSIGN_OR_RETURN(uint32_t code, ReadHex4());
          if (code >= 0xD800 && code <= 0xDBFF) {  // a high surrogate: its low one must follow
            if (!Consume('\\') || !Consume('u')) return NotAnEvent("a lone surrogate in a string");
            ASSIGN_OR_RETURN(const uint32_t low, ReadHex4());
            if (low < 0xDC00 || low > 0xDFFF) return NotAnEvent("a lone surrogate in a string");
            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
          } else if (code >= 0xDC00 && code <= 0xDFFF) {
            return NotAnEvent("a lone surrogate in a string");
          }
          AppendUtf8(out, code);
          break;
        }
        default:
          return NotAnEvent("a bad escape in a string");
      }
    }
    return NotAnEvent("an unterminated string");
  }

  absl::StatusOr<uint32_t> ReadHex4() {
    uint32_t value = 0;
    for (int i = 0; i < 4; ++i, ++pos_) {
      const char c = Peek();
      uint32_t digit = 0;
      if (c >= '0' && c <= '9') {
        digit = static_cast<uint32_t>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        digit = static_cast<uint32_t>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        digit = static_cast<uint32_t>(c - 'A' + 10);
      } else {
        return NotAnEvent("a bad \\u escape in a string");
      }
      value = value << 4 | digit;
    }
    return value;
  }

  static void AppendUtf8(std::string& out, uint32_t code) {
    auto byte = [&](uint32_t b) { out += static_cast<char>(b); };
    if (code < 0x80) {
      byte(code);
    } else if (code < 0x800) {
      byte(0xC0 | code >> 6);
      byte(0x80 | (code & 0x3F));
    } else if (code < 0x10000) {
      byte(0xE0 | code >> 12);
      byte(0x80 | (code >> 6 & 0x3F));
      byte(0x80 | (code & 0x3F));
    } else {
      byte(0xF0 | code >> 18);
      byte(0x80 | (code >> 12 & 0x3F));
      byte(0x80 | (code >> 6 & 0x3F));
      byte(0x80 | (code & 0x3F));
    }
  }

  std::string_view text_;
  size_t pos_ = 0;
};

}  // namespace

absl::StatusOr<domain::UserId> ParseUserEvent(std::string_view value) { return EventReader(value).Read(); }

EventBatch PlanBatch(const std::vector<EventRecord>& records) {
  EventBatch batch;
  absl::flat_hash_set<domain::UserId> seen;
  for (const EventRecord& record : records) {
    ++batch.events;
    int64_t& next = batch.commit_offsets[record.partition];
    next = std::max(next, record.offset + 1);
    auto user = ParseUserEvent(record.value);
    if (!user.ok()) {
      batch.dead_letters.push_back({record, std::string(user.status().message())});
    } else if (seen.insert(*user).second) {
      batch.users.push_back(*user);
    }
  }
  return batch;
}

}  // namespace segments::ingest
