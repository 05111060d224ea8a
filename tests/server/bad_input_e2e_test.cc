// Every malformed request the API allows, against one real server: each case checks the
// exact status code and message, and that a normal request is answered right after it.
// Texts, languages, variants, versions, decoding options, request ids, batches of thousands,
// raw garbage bytes, deadlines of 0 and of days, and streams that send bad messages,
// half-close early or are cancelled with work in flight.
#include <gtest/gtest.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cmath>
#include <functional>
#include <future>
#include <limits>
#include <map>

#include "tests/server/support/server_fixture.h"
#include "text/tokenizer.h"

namespace mixserve {
namespace {
using namespace mixserve::testing;
using grpc::StatusCode;

// max_batch_texts above the default queue (1024 sentences) so that both limits can be hit;
// max_input_tokens so that a sentence can be too long (without it, long ones are translated).
const char* kLimits = R"(
limits { max_text_bytes: 200 max_batch_texts: 3000 max_message_bytes: 65536 }
models { name: "en-de-base" max_input_tokens: 46 }
models { name: "en-de-alt" max_input_tokens: 46 }
models { name: "de-en-base" max_input_tokens: 46 }
)";

class BadInputE2E : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new ServerProcess;
    std::string error;
    ASSERT_TRUE(server_->Start("model_repository: \"" + StandardRepository() + "\"\n" + kLimits,
                               {}, &error))
        << error;
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override {
    ASSERT_NE(server_, nullptr);
    stub_ = server_->Translation();
  }

  grpc::Status Translate(const v1::TranslateRequest& req, v1::TranslateResponse* resp = nullptr,
                         std::function<void(grpc::ClientContext*)> setup = {}) {
    v1::TranslateResponse ignored;
    grpc::ClientContext c;
    if (setup) setup(&c);
    return stub_->Translate(&c, req, resp ? resp : &ignored);
  }
  grpc::Status Batch(const v1::TranslateBatchRequest& req,
                     v1::TranslateBatchResponse* resp = nullptr) {
    v1::TranslateBatchResponse ignored;
    grpc::ClientContext c;
    return stub_->TranslateBatch(&c, req, resp ? resp : &ignored);
  }
  // A normal request still gets its translation.
  void ExpectServing(const std::string& after) {
    v1::TranslateResponse r;
    grpc::Status s = Translate(Request("A dog runs."), &r);
    EXPECT_TRUE(s.ok()) << "after " << after << ": " << s.error_message();
    EXPECT_FALSE(r.variant().name().empty()) << "after " << after;
  }

  struct Case {
    std::string name;
    v1::TranslateRequest request;
    StatusCode code;
    std::string message;  // exact; ignored when code is OK
  };
  void RunTable(const std::vector<Case>& cases) {
    for (const auto& k : cases) {
      grpc::Status s = Translate(k.request);
      EXPECT_EQ(s.error_code(), k.code) << k.name << ": " << s.error_message();
      if (k.code != StatusCode::OK) {
        EXPECT_EQ(s.error_message(), k.message) << k.name;
      }
      ExpectServing(k.name);
    }
  }

  static ServerProcess* server_;
  std::unique_ptr<v1::TranslationService::Stub> stub_;
};
ServerProcess* BadInputE2E::server_ = nullptr;

v1::TranslateRequest WithVariant(const std::string& name, int64_t version = 0) {
  auto r = Request("A dog.");
  r.mutable_variant()->set_name(name);
  r.mutable_variant()->set_version(version);
  return r;
}

const char* kNotLanguage =
    "' is not a language code (letters, digits, '-' and '_', at most 35 bytes)";

TEST_F(BadInputE2E, Texts) {
  std::string binary;
  for (int c = 0; c < 256; ++c) binary += static_cast<char>(c);
  std::string words;
  for (int i = 0; i < 30; ++i) words += "zebra ";  // 180 bytes: within the byte limit
  // Counted with the tokenizer the test models share.
  const size_t tokens = Tokenizer::Load(TokenizerPath())->Encode(words).size();
  ASSERT_GT(tokens, 46u);
  RunTable({
      {"empty", Request(""), StatusCode::INVALID_ARGUMENT, "text is empty"},
      {"201 bytes", Request(std::string(201, 'a')), StatusCode::INVALID_ARGUMENT,
       "text is 201 bytes, above the limit of 200"},
      {"every byte value", Request(binary.substr(0, 200)), StatusCode::INVALID_ARGUMENT,
       "text is not valid UTF-8 (byte offset 128)"},
      {"truncated sequence", Request("caf\xc3"), StatusCode::INVALID_ARGUMENT,
       "text is not valid UTF-8 (byte offset 3)"},
      {"overlong slash", Request("a\xc0\xaf" "b"), StatusCode::INVALID_ARGUMENT,
       "text is not valid UTF-8 (byte offset 1)"},
      {"surrogate", Request("ab\xed\xa0\x80"), StatusCode::INVALID_ARGUMENT,
       "text is not valid UTF-8 (byte offset 2)"},
      {"above U+10FFFF", Request("\xf4\x90\x80\x80"), StatusCode::INVALID_ARGUMENT,
       "text is not valid UTF-8 (byte offset 0)"},
      {"ASCII white space", Request(" \t\r\n "), StatusCode::INVALID_ARGUMENT,
       "text holds only white space"},
      // SentencePiece's normalization drops control characters and folds Unicode spaces.
      {"control characters", Request("\x01\x02\x1b\x7f"), StatusCode::INVALID_ARGUMENT,
       "text yields no tokens"},
      {"Unicode spaces", Request("\xe3\x80\x80\xc2\xa0\xe2\x80\x83"), StatusCode::INVALID_ARGUMENT,
       "text yields no tokens"},
      {"too many tokens", Request(words), StatusCode::INVALID_ARGUMENT,
       "text is " + std::to_string(tokens) +
           " tokens after tokenization; variant en-de-alt/1 accepts at most 46 (its "
           "max_input_tokens)"},
      // Valid UTF-8 that is odd but translatable.
      {"NUL inside", Request(std::string("A\0dog.", 6)), StatusCode::OK, ""},
      {"escapes and tabs", Request("A \x1b[31mred\x1b[0m\tdog."), StatusCode::OK, ""},
      {"emoji and CJK", Request("A dog \xf0\x9f\x90\x95 \xe7\x8a\xac."), StatusCode::OK, ""},
      {"byte-order mark", Request("\xef\xbb\xbf" "A dog."), StatusCode::OK, ""},
  });
}

TEST_F(BadInputE2E, LanguagesVariantsVersions) {
  auto reference = Request("A dog.");
  reference.set_reference("Ein \xff Hund.");
  auto request_id = Request("A dog.");
  request_id.set_request_id(std::string(129, 'r'));
  auto request_id_newline = Request("A dog.");
  request_id_newline.set_request_id("a\nb");
  auto bad_id_bytes = Request("A dog.");
  bad_id_bytes.set_request_id("\xfe");
  RunTable({
      {"unknown pair", Request("A dog.", "en", "xx"), StatusCode::NOT_FOUND,
       "no loaded variant translates en-xx"},
      {"unknown source", Request("A dog.", "tlh", "de"), StatusCode::NOT_FOUND,
       "no loaded variant translates tlh-de"},
      {"no languages", Request("A dog.", "", ""), StatusCode::INVALID_ARGUMENT,
       "source_language and target_language are required when no variant is named"},
      {"source only", Request("A dog.", "en", ""), StatusCode::INVALID_ARGUMENT,
       "source_language and target_language are required when no variant is named"},
      {"language with newline", Request("A dog.", "en\n", "de"), StatusCode::INVALID_ARGUMENT,
       std::string("source_language 'en\\x0a") + kNotLanguage},
      {"language traversal", Request("A dog.", "en", "../de"), StatusCode::INVALID_ARGUMENT,
       std::string("target_language '../de") + kNotLanguage},
      {"language 36 bytes", Request("A dog.", std::string(36, 'e'), "de"),
       StatusCode::INVALID_ARGUMENT,
       "source_language '" + std::string(36, 'e') + kNotLanguage},
      {"language bad UTF-8", Request("A dog.", "e\xffn", "de"), StatusCode::INVALID_ARGUMENT,
       "source_language is not valid UTF-8 (byte offset 1)"},
      {"unknown variant", WithVariant("en-de-nope"), StatusCode::NOT_FOUND,
       "variant en-de-nope is not loaded"},
      {"unknown version", WithVariant("en-de-base", 9), StatusCode::NOT_FOUND,
       "variant en-de-base version 9 is not loaded"},
      {"huge version", WithVariant("en-de-base", std::numeric_limits<int64_t>::max()),
       StatusCode::NOT_FOUND,
       "variant en-de-base version 9223372036854775807 is not loaded"},
      {"negative version", WithVariant("en-de-base", -1), StatusCode::INVALID_ARGUMENT,
       "variant.version is negative (-1)"},
      {"version without name", WithVariant("", 2), StatusCode::INVALID_ARGUMENT,
       "variant.version is set without a name"},
      {"variant traversal", WithVariant("../en-de-base"), StatusCode::INVALID_ARGUMENT,
       "variant.name '../en-de-base' is not a valid model name"},
      {"variant absolute path", WithVariant("/etc/passwd"), StatusCode::INVALID_ARGUMENT,
       "variant.name '/etc/passwd' is not a valid model name"},
      {"variant of another pair", [] {
         auto r = WithVariant("en-de-base");
         r.set_source_language("de");
         r.set_target_language("en");
         return r;
       }(), StatusCode::INVALID_ARGUMENT, "variant en-de-base translates en-de, not de-en"},
      {"reference bad UTF-8", reference, StatusCode::INVALID_ARGUMENT,
       "reference is not valid UTF-8 (byte offset 4)"},
      {"request id 129 bytes", request_id, StatusCode::INVALID_ARGUMENT,
       "request_id is 129 bytes, above the limit of 128"},
      {"request id newline", request_id_newline, StatusCode::INVALID_ARGUMENT,
       "request_id holds a control character"},
      {"request id bad UTF-8", bad_id_bytes, StatusCode::INVALID_ARGUMENT,
       "request_id is not valid UTF-8 (byte offset 0)"},
  });
}

TEST_F(BadInputE2E, DecodingOptions) {
  auto with = [](std::function<void(v1::DecodingOptions*)> f) {
    auto r = Request("A dog.");
    f(r.mutable_options());
    return r;
  };
  const float inf = std::numeric_limits<float>::infinity();
  RunTable({
      {"beam -1", with([](auto* o) { o->set_beam_size(-1); }), StatusCode::INVALID_ARGUMENT,
       "options.beam_size is -1; must be 0 (default) to 16"},
      {"beam 17", with([](auto* o) { o->set_beam_size(17); }), StatusCode::INVALID_ARGUMENT,
       "options.beam_size 17 is above the maximum of 16"},
      {"beam 2^31-1", with([](auto* o) { o->set_beam_size(2147483647); }),
       StatusCode::INVALID_ARGUMENT, "options.beam_size 2147483647 is above the maximum of 16"},
      {"n_best -1", with([](auto* o) { o->set_n_best(-1); }), StatusCode::INVALID_ARGUMENT,
       "options.n_best is negative (-1)"},
      {"n_best above beam", with([](auto* o) { o->set_beam_size(2); o->set_n_best(3); }),
       StatusCode::INVALID_ARGUMENT, "options.n_best 3 is above beam_size 2"},
      {"n_best above default beam", with([](auto* o) { o->set_n_best(2); }),
       StatusCode::INVALID_ARGUMENT,
       "options.n_best 2 is above the beam size 1 of variant en-de-alt/1"},
      {"max_output_tokens -5", with([](auto* o) { o->set_max_output_tokens(-5); }),
       StatusCode::INVALID_ARGUMENT, "options.max_output_tokens is negative (-5)"},
      {"length_penalty NaN", with([](auto* o) { o->set_length_penalty(std::nanf("")); }),
       StatusCode::INVALID_ARGUMENT, "options.length_penalty must be a finite non-negative number"},
      {"length_penalty inf", with([&](auto* o) { o->set_length_penalty(inf); }),
       StatusCode::INVALID_ARGUMENT, "options.length_penalty must be a finite non-negative number"},
      {"length_penalty -1", with([](auto* o) { o->set_length_penalty(-1); }),
       StatusCode::INVALID_ARGUMENT, "options.length_penalty must be a finite non-negative number"},
      // Large but legal values are clamped to the model's limits, not refused.
      {"max_output_tokens 2^31-1", with([](auto* o) { o->set_max_output_tokens(2147483647); }),
       StatusCode::OK, ""},
      {"beam 16 n_best 16", with([](auto* o) {
         o->set_beam_size(16);
         o->set_n_best(16);
         o->set_max_output_tokens(4);
       }), StatusCode::OK, ""},
      {"length_penalty 1e30", with([](auto* o) { o->set_length_penalty(1e30f); }), StatusCode::OK,
       ""},
  });
}

TEST_F(BadInputE2E, Batches) {
  auto batch = [](int n, const std::string& text = "A dog.") {
    v1::TranslateBatchRequest b;
    b.set_source_language("en");
    b.set_target_language("de");
    b.mutable_variant()->set_name("en-de-base");
    b.mutable_options()->set_max_output_tokens(1);
    for (int i = 0; i < n; ++i) b.add_texts(text);
    return b;
  };
  struct BatchCase {
    std::string name;
    v1::TranslateBatchRequest request;
    StatusCode code;
    std::string message;
  };
  auto bad_third = batch(5);
  bad_third.set_texts(3, "ok\xff");
  auto blank_second = batch(3);
  blank_second.set_texts(1, "");
  auto refs = batch(3);
  refs.add_references("Ein Hund.");
  auto no_lang = batch(2);
  no_lang.clear_variant();
  no_lang.clear_source_language();
  std::vector<BatchCase> cases = {
      {"no texts", batch(0), StatusCode::INVALID_ARGUMENT, "texts is empty"},
      {"5000 texts", batch(5000), StatusCode::RESOURCE_EXHAUSTED,
       "batch of 5000 texts is above the limit of 3000"},
      // Within the batch limit but larger than the variant's whole queue.
      {"2000 texts", batch(2000), StatusCode::RESOURCE_EXHAUSTED,
       "queue of variant en-de-base/1 is full (1024 sentences)"},
      {"bad text 3", bad_third, StatusCode::INVALID_ARGUMENT,
       "texts[3] is not valid UTF-8 (byte offset 2)"},
      {"empty text 1", blank_second, StatusCode::INVALID_ARGUMENT, "texts[1] is empty"},
      {"references count", refs, StatusCode::INVALID_ARGUMENT,
       "references has 1 entries; expected none or one per text (3)"},
      {"no languages", no_lang, StatusCode::INVALID_ARGUMENT,
       "source_language and target_language are required when no variant is named"},
  };
  for (const auto& k : cases) {
    grpc::Status s = Batch(k.request);
    EXPECT_EQ(s.error_code(), k.code) << k.name << ": " << s.error_message();
    EXPECT_EQ(s.error_message(), k.message) << k.name;
    ExpectServing(k.name);
  }
  // 1000 answers do not fit a 64 KiB response (each takes about 70 bytes: id, variant, token
  // counts, score, timings, with a one-token translation): refused with the
  // limit named, not gRPC's bare "Sent message larger than max".
  grpc::Status s = Batch(batch(1000));
  EXPECT_EQ(s.error_code(), StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
  EXPECT_EQ(s.error_message().rfind("response of about ", 0), 0u) << s.error_message();
  const std::string tail =
      " bytes is above the limit of 65536 (limits.max_message_bytes); send fewer texts per call";
  EXPECT_TRUE(s.error_message().size() > tail.size() &&
              s.error_message().substr(s.error_message().size() - tail.size()) == tail)
      << s.error_message();
  ExpectServing("1000 texts");
  // Counted as what the client saw, not as a success.
  EXPECT_EQ(MetricSum(HttpGet(server_->metrics_port(), "/metrics"), "mixserve_requests_total",
                      {{"method", "TranslateBatch"}, {"code", "RESOURCE_EXHAUSTED"}}),
            3);
  // Hundreds of sentences in one call are all answered.
  v1::TranslateBatchResponse r;
  auto big = batch(500);
  for (int i = 0; i < 500; i += 37) big.set_texts(i, "A cat number " + std::to_string(i) + ".");
  s = Batch(big, &r);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(r.translations_size(), 500);
  for (const auto& t : r.translations()) EXPECT_EQ(t.variant().name(), "en-de-base");
  ExpectServing("500 texts");
}

TEST_F(BadInputE2E, MessageSizeAndGarbageBytes) {
  // Above max_message_bytes (64 KiB): gRPC refuses it before the service sees it.
  auto huge = Request(std::string(70000, 'a'));
  grpc::Status s = Translate(huge);
  EXPECT_EQ(s.error_code(), StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(s.error_message(), "Received message larger than max (" +
                                   std::to_string(huge.ByteSizeLong()) + " vs. 65536)");
  ExpectServing("message above the limit");
  // Raw bytes that are no protobuf message at all, on both unary methods.
  grpc::GenericStub generic(server_->Channel());
  for (const char* method : {"/mixserve.v1.TranslationService/Translate",
                             "/mixserve.v1.TranslationService/TranslateBatch"}) {
    for (const std::string& bytes : {std::string("\xff\xff\xff\xff"), std::string("\x0a\x7f" "abc"),
                                     std::string(1, '\0')}) {
      grpc::Slice slice(bytes);
      grpc::ByteBuffer req(&slice, 1), resp;
      grpc::ClientContext c;
      std::promise<grpc::Status> done;
      generic.UnaryCall(&c, method, grpc::StubOptions(), &req, &resp,
                        [&](grpc::Status st) { done.set_value(st); });
      grpc::Status st = done.get_future().get();
      EXPECT_EQ(st.error_code(), StatusCode::INVALID_ARGUMENT) << method << ": " << st.error_message();
      const std::string type = std::string(method).find("Batch") != std::string::npos
                                   ? "mixserve.v1.TranslateBatchRequest"
                                   : "mixserve.v1.TranslateRequest";
      EXPECT_EQ(st.error_message(), "the request is not a valid " + type + " message") << method;
      ExpectServing(std::string("garbage on ") + method);
    }
  }
}

TEST_F(BadInputE2E, Deadlines) {
  auto deadline_in = [](std::chrono::system_clock::duration d) {
    return [d](grpc::ClientContext* c) { c->set_deadline(std::chrono::system_clock::now() + d); };
  };
  // 0: already expired when the call starts.
  grpc::Status s = Translate(Request("A dog."), nullptr, deadline_in({}));
  EXPECT_EQ(s.error_code(), StatusCode::DEADLINE_EXCEEDED) << s.error_message();
  EXPECT_EQ(s.error_message(), "Deadline Exceeded");
  ExpectServing("deadline 0");
  // Days and a century away: as good as none.
  for (auto d : {std::chrono::system_clock::duration(std::chrono::hours(24 * 3)),
                 std::chrono::system_clock::duration(std::chrono::hours(24 * 365 * 100))}) {
    v1::TranslateResponse r;
    s = Translate(Request("A dog."), &r, deadline_in(d));
    EXPECT_TRUE(s.ok()) << s.error_message();
    EXPECT_FALSE(r.variant().name().empty());
  }
}

TEST_F(BadInputE2E, Streams) {
  {  // Half-closed before sending anything: finishes OK with no answers.
    grpc::ClientContext c;
    auto stream = stub_->TranslateStream(&c);
    stream->WritesDone();
    v1::TranslateResponse r;
    EXPECT_FALSE(stream->Read(&r));
    grpc::Status s = stream->Finish();
    EXPECT_TRUE(s.ok()) << s.error_message();
    ExpectServing("empty stream");
  }
  {  // Bad messages among good ones, then an early half-close: every message is answered.
    grpc::ClientContext c;
    auto stream = stub_->TranslateStream(&c);
    std::map<std::string, std::pair<int, std::string>> expect;
    for (int i = 0; i < 40; ++i) {
      v1::TranslateRequest req = Request("A dog number " + std::to_string(i) + ".");
      std::string id = "m" + std::to_string(i);
      req.set_request_id(id);
      expect[id] = {0, ""};
      if (i % 4 == 1) {
        req.set_text("bad\xff");
        expect[id] = {3, "text is not valid UTF-8 (byte offset 3)"};
      } else if (i % 4 == 2) {
        req.set_target_language("xx");
        expect[id] = {5, "no loaded variant translates en-xx"};
      } else if (i % 4 == 3) {
        req.mutable_options()->set_beam_size(99);
        expect[id] = {3, "options.beam_size 99 is above the maximum of 16"};
      }
      ASSERT_TRUE(stream->Write(req));
    }
    stream->WritesDone();  // while most are still being translated
    std::map<std::string, int> seen;
    v1::TranslateResponse r;
    while (stream->Read(&r)) {
      ++seen[r.request_id()];
      auto it = expect.find(r.request_id());
      ASSERT_NE(it, expect.end()) << r.request_id();
      EXPECT_EQ(r.status_code(), it->second.first) << r.request_id() << ": " << r.status_message();
      EXPECT_EQ(r.status_message(), it->second.second) << r.request_id();
      if (r.status_code() == 0) {
        EXPECT_FALSE(r.variant().name().empty());
      }
    }
    grpc::Status s = stream->Finish();
    EXPECT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(seen.size(), expect.size());
    for (const auto& [id, n] : seen) EXPECT_EQ(n, 1) << id << " answered " << n << " times";
    ExpectServing("stream with bad messages");
  }
  {  // Cancelled by the client with work in flight: the server drops it and goes on.
    grpc::ClientContext c;
    auto stream = stub_->TranslateStream(&c);
    for (int i = 0; i < 20; ++i) {
      auto req = Request("A long sentence about a dog that runs across a green field.");
      req.mutable_options()->set_max_output_tokens(40);
      ASSERT_TRUE(stream->Write(req));
    }
    c.TryCancel();
    v1::TranslateResponse r;
    while (stream->Read(&r)) {
    }
    EXPECT_EQ(stream->Finish().error_code(), StatusCode::CANCELLED);
    ExpectServing("cancelled stream");
  }
  {  // Abandoned without half-close: the client side is destroyed mid-stream.
    auto c = std::make_unique<grpc::ClientContext>();
    auto stream = stub_->TranslateStream(c.get());
    ASSERT_TRUE(stream->Write(Request("A dog.")));
    c->TryCancel();
    stream.reset();
    c.reset();
    ExpectServing("abandoned stream");
  }
}

}  // namespace
}  // namespace mixserve
