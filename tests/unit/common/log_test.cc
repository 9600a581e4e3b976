#include "common/log.h"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "support/stderr_capture.h"

using segments::log::Field;
using segments::log::Format;
using segments::log::FormatLine;
using segments::log::Level;

TEST_CASE("A JSON line has time, level, message and the fields as keys", "[log]") {
  const std::string line = FormatLine(Format::kJson, "2026-12-05T10:00:00.123Z", Level::kWarning, "slow call",
                                      {{"method", "/a.B/C"}, {"request_id", "r-1"}});
  CHECK(
      line ==
      R"({"time":"2026-12-05T10:00:00.123Z","level":"warn","message":"slow call","method":"/a.B/C","request_id":"r-1"})");
}

TEST_CASE("JSON strings escape quotes, control characters and bytes that are not UTF-8", "[log]") {
  const std::string line =
      FormatLine(Format::kJson, "t", Level::kInfo, "say \"hi\"\\\n\t\x01 caf\xc3\xa9 \xff end", std::vector<Field>{});
  CHECK(line == R"({"time":"t","level":"info","message":"say \"hi\"\\\n\t\u0001 café \ufffd end"})");
  // A truncated sequence and an overlong form are replaced too.
  CHECK(FormatLine(Format::kJson, "t", Level::kError, "\xe2\x82", {}) ==
        R"({"time":"t","level":"error","message":"\ufffd\ufffd"})");
  CHECK(FormatLine(Format::kJson, "t", Level::kError, "\xc0\xaf", {}) ==
        R"({"time":"t","level":"error","message":"\ufffd\ufffd"})");
}

TEST_CASE("A text line keeps today's shape, fields as key=value", "[log]") {
  CHECK(FormatLine(Format::kText, "2026-12-05T10:00:00.123Z", Level::kError, "call failed",
                   {{"code", "INTERNAL"}, {"error", "internal error"}, {"empty", ""}}) ==
        R"(2026-12-05T10:00:00.123Z ERROR call failed code=INTERNAL error="internal error" empty="")");
  // A value cannot break the line or forge another field.
  CHECK(FormatLine(Format::kText, "t", Level::kInfo, "m", {{"id", "a\nb=\"c"}}) == R"(t INFO m id="a b=\"c")");
}

namespace {

void DescribeTestCall(const void* subject, std::vector<Field>& fields) {
  fields.push_back({"request_id", *static_cast<const std::string*>(subject)});
}

}  // namespace

TEST_CASE("A log context adds its fields to the lines of its thread while open", "[log]") {
  // Written lines go to stderr.
  const std::string written = segments::testing::CaptureStderr([] {
    segments::log::SetFormat(Format::kJson);
    {
      const std::string id = "req-7";
      const segments::log::LogContext context(&DescribeTestCall, &id);
      segments::log::Write(Level::kWarning, "inside", {{"step", "1"}});
    }
    segments::log::Write(Level::kWarning, "outside");
    segments::log::SetFormat(Format::kText);
  });
  CHECK(written.find(R"("message":"inside","step":"1","request_id":"req-7"})") != std::string::npos);
  CHECK(written.find(R"("message":"outside"})") != std::string::npos);
}
