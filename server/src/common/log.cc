#include "common/log.h"

#include <absl/time/clock.h>
#include <absl/time/time.h>

#include <atomic>
#include <cstdio>

namespace segments::log {
namespace {

std::atomic<Level> min_level{Level::kInfo};
std::atomic<Format> format{Format::kText};
thread_local LogContext* innermost_context = nullptr;

// A level's name in each format, in the order of Level.
std::string_view NameOf(Level level, Format in) {
  static constexpr std::string_view kText[] = {"DEBUG", "INFO", "WARN", "ERROR"};
  static constexpr std::string_view kJson[] = {"debug", "info", "warn", "error"};
  const auto index = static_cast<size_t>(level);
  return in == Format::kJson ? kJson[index] : kText[index];
}

// The length of the valid UTF-8 sequence starting at text[0], or 0.
size_t Utf8Length(std::string_view text) {
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char lead = byte(0);
  size_t length = 0;
  if (lead >= 0xC2 && lead <= 0xDF) length = 2;
  if (lead >= 0xE0 && lead <= 0xEF) length = 3;
  if (lead >= 0xF0 && lead <= 0xF4) length = 4;
  if (length == 0 || text.size() < length) return 0;
  for (size_t i = 1; i < length; ++i) {
    if ((byte(i) & 0xC0) != 0x80) return 0;
  }
  // Overlong forms, surrogates and code points past U+10FFFF.
  if (lead == 0xE0 && byte(1) < 0xA0) return 0;
  if (lead == 0xED && byte(1) > 0x9F) return 0;
  if (lead == 0xF0 && byte(1) < 0x90) return 0;
  if (lead == 0xF4 && byte(1) > 0x8F) return 0;
  return length;
}

// A JSON string: quotes, backslashes and control characters escaped, bytes
// that are not UTF-8 (messages may quote what a client sent) replaced.
void AppendJsonString(std::string& out, std::string_view text) {
  out += '"';
  for (size_t i = 0; i < text.size();) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7F) {
      out += fmt::format("\\u{:04x}", c);
    } else if (c >= 0x80) {
      const size_t length = Utf8Length(text.substr(i));
      if (length == 0) {
        out += "\\ufffd";
        ++i;
        continue;
      }
      out.append(text.substr(i, length));
      i += length;
      continue;
    } else {
      out += static_cast<char>(c);
    }
    ++i;
  }
  out += '"';
}

// Text values are quoted when they would not read as one word.
void AppendTextValue(std::string& out, std::string_view value) {
  const bool plain = !value.empty() && value.find_first_of(" \"=\n\t") == std::string_view::npos;
  if (plain) {
    out += value;
    return;
  }
  out += '"';
  for (char c : value) {
    if (c == '"' || c == '\\') out += '\\';
    out += c == '\n' ? ' ' : c;
  }
  out += '"';
}

}  // namespace

void SetMinLevel(Level level) { min_level.store(level); }
bool Enabled(Level level) { return level >= min_level.load(std::memory_order_relaxed); }
void SetFormat(Format new_format) { format.store(new_format); }

std::string FormatLine(Format line_format, std::string_view time, Level level, std::string_view message,
                       const std::vector<Field>& fields) {
  std::string line;
  if (line_format == Format::kJson) {
    line += "{\"time\":";
    AppendJsonString(line, time);
    line += ",\"level\":";
    AppendJsonString(line, NameOf(level, Format::kJson));
    line += ",\"message\":";
    AppendJsonString(line, message);
    for (const Field& field : fields) {
      line += ',';
      AppendJsonString(line, field.key);
      line += ':';
      AppendJsonString(line, field.value);
    }
    line += '}';
    return line;
  }
  line = fmt::format("{} {} {}", time, NameOf(level, Format::kText), message);
  for (const Field& field : fields) {
    line += ' ';
    line += field.key;
    line += '=';
    AppendTextValue(line, field.value);
  }
  return line;
}

void Write(Level level, std::string_view message, std::initializer_list<Field> fields) {
  std::vector<Field> all(fields);
  // Outer contexts' fields first.
  std::vector<LogContext*> contexts;
  for (LogContext* context = innermost_context; context != nullptr; context = context->outer_) {
    contexts.push_back(context);
  }
  for (auto it = contexts.rbegin(); it != contexts.rend(); ++it) (*it)->describe_((*it)->subject_, all);
  const std::string time = absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone());
  std::string line = FormatLine(format.load(std::memory_order_relaxed), time, level, message, all);
  line += '\n';
  std::fwrite(line.data(), 1, line.size(), stderr);  // one write per line keeps lines whole
}

LogContext::LogContext(Describe describe, const void* subject)
    : describe_(describe), subject_(subject), outer_(innermost_context) {
  innermost_context = this;
}

LogContext::~LogContext() { innermost_context = outer_; }

}  // namespace segments::log
