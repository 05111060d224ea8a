#include <gtest/gtest.h>

#include "server/log.h"
#include "server/validation.h"

namespace mixserve {
namespace {

v1::LimitsConfig Limits() {
  v1::LimitsConfig l;
  l.set_max_text_bytes(20);
  l.set_max_batch_texts(3);
  return l;
}

TEST(Validation, Utf8) {
  EXPECT_EQ(InvalidUtf8Offset("plain"), -1);
  EXPECT_EQ(InvalidUtf8Offset("Gr\xc3\xbc\xc3\x9f" "e \xe2\x82\xac \xf0\x9f\x98\x80"), -1);
  EXPECT_EQ(InvalidUtf8Offset("ab\xff"), 2);
  EXPECT_EQ(InvalidUtf8Offset("a\xc3"), 1);            // truncated
  EXPECT_EQ(InvalidUtf8Offset("\xc0\xaf"), 0);         // overlong '/'
  EXPECT_EQ(InvalidUtf8Offset("x\xed\xa0\x80"), 1);    // surrogate
  EXPECT_EQ(InvalidUtf8Offset("\xf4\x90\x80\x80"), 0);  // above U+10FFFF
}

TEST(Validation, Text) {
  auto l = Limits();
  EXPECT_TRUE(CheckText("hello", "text", l).ok());
  auto s = CheckText("", "text", l);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("text is empty"), std::string::npos);
  s = CheckText(std::string(21, 'a'), "texts[2]", l);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("texts[2] is 21 bytes"), std::string::npos);
  s = CheckText("a\xff", "text", l);
  EXPECT_NE(s.error_message().find("UTF-8"), std::string::npos);
  EXPECT_EQ(CheckText("  \n", "text", l).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST(Validation, Options) {
  v1::DecodingOptions o;
  EXPECT_TRUE(CheckOptions(o).ok());  // all defaults
  o.set_beam_size(-1);
  EXPECT_NE(CheckOptions(o).error_message().find("beam_size"), std::string::npos);
  o.set_beam_size(17);
  EXPECT_NE(CheckOptions(o).error_message().find("maximum of 16"), std::string::npos);
  o.set_beam_size(4);
  o.set_n_best(5);
  EXPECT_NE(CheckOptions(o).error_message().find("n_best 5 is above beam_size 4"),
            std::string::npos);
  o.set_n_best(-2);
  EXPECT_EQ(CheckOptions(o).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  o.set_n_best(4);
  EXPECT_TRUE(CheckOptions(o).ok());
  o.set_max_output_tokens(-3);
  EXPECT_NE(CheckOptions(o).error_message().find("max_output_tokens"), std::string::npos);
  o.set_max_output_tokens(0);
  o.set_length_penalty(-1);
  EXPECT_NE(CheckOptions(o).error_message().find("length_penalty"), std::string::npos);
}

TEST(Validation, Requests) {
  auto l = Limits();
  v1::TranslateRequest r;
  r.set_text("hello");
  auto s = CheckRequest(r, l);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("source_language"), std::string::npos);
  r.mutable_variant()->set_name("en-de-base");
  EXPECT_TRUE(CheckRequest(r, l).ok());  // explicit variant: languages optional
  r.mutable_variant()->set_name("../x");
  EXPECT_NE(CheckRequest(r, l).error_message().find("not a valid model name"),
            std::string::npos);

  v1::TranslateBatchRequest b;
  b.set_source_language("en");
  b.set_target_language("de");
  EXPECT_NE(CheckBatchRequest(b, l).error_message().find("texts is empty"), std::string::npos);
  for (int i = 0; i < 4; ++i) b.add_texts("a");
  EXPECT_EQ(CheckBatchRequest(b, l).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  b.clear_texts();
  b.add_texts("a");
  b.add_texts("");
  EXPECT_NE(CheckBatchRequest(b, l).error_message().find("texts[1] is empty"),
            std::string::npos);
  b.set_texts(1, "b");
  b.add_references("x");
  EXPECT_NE(CheckBatchRequest(b, l).error_message().find("references"), std::string::npos);
  b.add_references("y");
  EXPECT_TRUE(CheckBatchRequest(b, l).ok());
}

// Requests as clients can send them: proto3 refuses strings that are not UTF-8 when parsing
// (serializing them only logs), and the error must name the field and the byte offset.
TEST(Validation, ParseRequestBytesNamesTheBadField) {
  v1::TranslateRequest r;
  r.set_text("caf\xc3");
  r.set_request_id("id-1");
  v1::TranslateRequest parsed;
  grpc::Status s = ParseRequestBytes(r.SerializeAsString(), &parsed);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(), "text is not valid UTF-8 (byte offset 3)");

  r.set_text("fine");
  r.mutable_variant()->set_name("ab\xff");
  s = ParseRequestBytes(r.SerializeAsString(), &parsed);
  EXPECT_EQ(s.error_message(), "variant.name is not valid UTF-8 (byte offset 2)");

  v1::TranslateBatchRequest b;
  b.add_texts("one");
  b.add_texts("two");
  b.add_texts("\xe2\x82");
  v1::TranslateBatchRequest parsed_batch;
  s = ParseRequestBytes(b.SerializeAsString(), &parsed_batch);
  EXPECT_EQ(s.error_message(), "texts[2] is not valid UTF-8 (byte offset 0)");

  // Valid bytes parse; garbage is refused as a whole.
  r.mutable_variant()->set_name("en-de-base");
  ASSERT_TRUE(ParseRequestBytes(r.SerializeAsString(), &parsed).ok());
  EXPECT_EQ(parsed.request_id(), "id-1");
  EXPECT_EQ(parsed.variant().name(), "en-de-base");
  s = ParseRequestBytes(std::string("\x0a\x10" "ab"), &parsed);  // length beyond the data
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("not a valid mixserve.v1.TranslateRequest"),
            std::string::npos);
}

}  // namespace
}  // namespace mixserve

namespace mixserve {
namespace {

TEST(Validation, LanguageCodesAndRequestIds) {
  v1::VariantRef none;
  EXPECT_TRUE(CheckLanguages("en", "pt-BR", none).ok());
  EXPECT_TRUE(CheckLanguages("zh_Hant", "de", none).ok());
  auto s = CheckLanguages("en\nx", "de", none);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(),
            "source_language 'en\\x0ax' is not a language code (letters, digits, '-' and '_', "
            "at most 35 bytes)");
  s = CheckLanguages("en", std::string(50, 'd'), none);
  EXPECT_EQ(s.error_message(), "target_language '" + std::string(40, 'd') +
                                   "...' is not a language code (letters, digits, '-' and "
                                   "'_', at most 35 bytes)");
  EXPECT_FALSE(CheckLanguages("../en", "de", none).ok());
  // A long value is cut before a character, never inside one.
  std::string umlauts;
  for (int i = 0; i < 30; ++i) umlauts += "\xc3\xbc";
  EXPECT_EQ(CheckLanguages(umlauts, "de", none).error_message(),
            "source_language '" + umlauts.substr(0, 40) +
                "...' is not a language code (letters, digits, '-' and '_', at most 35 bytes)");
  EXPECT_EQ(CheckLanguages("a" + umlauts, "de", none).error_message(),
            "source_language 'a" + umlauts.substr(0, 38) +
                "...' is not a language code (letters, digits, '-' and '_', at most 35 bytes)");
  EXPECT_TRUE(CheckRequestId("").ok());
  EXPECT_TRUE(CheckRequestId(std::string(128, 'r')).ok());
  EXPECT_EQ(CheckRequestId(std::string(129, 'r')).error_message(),
            "request_id is 129 bytes, above the limit of 128");
  EXPECT_EQ(CheckRequestId("a\r\nb").error_message(), "request_id holds a control character");
}

TEST(Log, QuoteEscapesWhatCouldForgeALine) {
  EXPECT_EQ(LogQuote("plain-id_1"), "plain-id_1");
  EXPECT_EQ(LogQuote(""), "\"\"");
  EXPECT_EQ(LogQuote("a b"), "\"a b\"");
  EXPECT_EQ(LogQuote("x\n2026-01-01 ERROR fake"), "\"x\\n2026-01-01 ERROR fake\"");
  EXPECT_EQ(LogQuote("a\rb\x1b[2Jc"), "\"a\\x0db\\x1b[2Jc\"");
  EXPECT_EQ(LogQuote("k=v\"\\"), "\"k=v\\\"\\\\\"");
}

}  // namespace
}  // namespace mixserve
