// Log lines (server/log.h): the text format and the JSON one, whose members come from the
// message's key=value fields.
#include <gtest/gtest.h>

#include "server/log.h"

namespace mixserve {
namespace {

const char* kTime = "2026-12-07T13:00:00.123Z";

TEST(Log, TextLine) {
  EXPECT_EQ(FormatLogLine(LogFormat::kText, kTime, LogLevel::kWarning, "a b=c"),
            "2026-12-07T13:00:00.123Z WARNING a b=c");
}

TEST(Log, JsonLineTakesTrailingFieldsAsMembers) {
  EXPECT_EQ(FormatLogLine(LogFormat::kJson, kTime, LogLevel::kInfo,
                          "admin call refused reason=not-local peer=ipv4:192.0.2.2:5555"),
            R"({"time":"2026-12-07T13:00:00.123Z","level":"INFO","message":"admin call )"
            R"(refused","reason":"not-local","peer":"ipv4:192.0.2.2:5555"})");
  // Numbers stay numbers; quoted values are unquoted, escapes undone.
  EXPECT_EQ(FormatLogLine(LogFormat::kJson, kTime, LogLevel::kDebug,
                          "request id=" + LogQuote("a \"b\"\n\x01") + " code=0 ms=12.5 v=007"),
            R"({"time":"2026-12-07T13:00:00.123Z","level":"DEBUG","message":"request",)"
            R"("id":"a \"b\"\n\u0001","code":0,"ms":12.5,"v":"007"})");
}

TEST(Log, JsonLineWithoutTrailingFieldsKeepsTheMessage) {
  // "grace 20 s" ends in a word, so the '=' earlier on is part of the message.
  EXPECT_EQ(FormatLogLine(LogFormat::kJson, kTime, LogLevel::kError, "x=1 draining, grace 20 s"),
            R"({"time":"2026-12-07T13:00:00.123Z","level":"ERROR","message":"x=1 draining, )"
            R"(grace 20 s"})");
  // An open quote: no fields.
  EXPECT_EQ(FormatLogLine(LogFormat::kJson, kTime, LogLevel::kInfo, "bad a=\"b c=d"),
            R"({"time":"2026-12-07T13:00:00.123Z","level":"INFO","message":"bad a=\"b c=d"})");
}

TEST(Log, JsonLineReservedNamesAndInvalidUtf8) {
  EXPECT_EQ(FormatLogLine(LogFormat::kJson, kTime, LogLevel::kInfo,
                          "m level=x message=y text=" + LogQuote("\xff\xc3\xa9")),
            R"({"time":"2026-12-07T13:00:00.123Z","level":"INFO","message":"m",)"
            R"("field_level":"x","field_message":"y","text":"\ufffdé"})");
}

TEST(Log, ParseLogFormat) {
  LogFormat f = LogFormat::kText;
  EXPECT_TRUE(ParseLogFormat("json", &f));
  EXPECT_EQ(f, LogFormat::kJson);
  EXPECT_TRUE(ParseLogFormat("text", &f));
  EXPECT_EQ(f, LogFormat::kText);
  EXPECT_FALSE(ParseLogFormat("xml", &f));
}

}  // namespace
}  // namespace mixserve
