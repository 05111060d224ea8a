// Seeded random fuzzer of the server's request checks (server/validation.h): the UTF-8
// check against the standard's table (tests/text/text_fuzz_checks.h), CheckText against its
// documented rules, and ParseRequestBytes + CheckRequest/CheckBatchRequest on mutated wire
// bytes of real requests. Bounded like the text fuzzer: MIXSERVE_FUZZ_SECONDS (default 3 here)
// and MIXSERVE_FUZZ_SEED.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <random>

#include "server/validation.h"
#include "tests/text/text_fuzz_checks.h"

namespace mixserve {
namespace {

double EnvNumber(const char* name, double fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::atof(v) : fallback;
}

void AppendVarint(std::string* s, uint64_t v) {
  while (v >= 0x80) {
    s->push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  s->push_back(static_cast<char>(v));
}

// A length-delimited field on the wire (what a client with no UTF-8 checks can send).
std::string RawField(int number, const std::string& bytes) {
  std::string s;
  AppendVarint(&s, static_cast<uint64_t>(number) << 3 | 2);
  AppendVarint(&s, bytes.size());
  return s + bytes;
}

class WireMutator {
 public:
  WireMutator(uint64_t seed, fuzz::TextGenerator* text) : rng_(seed), text_(text) {}
  std::string Next(const std::string& valid) {
    std::string s = valid;
    const int edits = static_cast<int>(rng_() % 4);
    for (int e = 0; e < edits; ++e) {
      const size_t at = s.empty() ? 0 : rng_() % s.size();
      switch (rng_() % 5) {
        case 0:
          if (!s.empty()) s[at] = static_cast<char>(rng_() & 0xFF);
          break;
        case 1:
          s = s.substr(0, at);
          break;
        case 2:
          s.insert(at, 1, static_cast<char>(rng_() & 0xFF));
          break;
        case 3:  // a string field of any number with arbitrary bytes
          s += RawField(1 + static_cast<int>(rng_() % 9), text_->Next());
          break;
        default:  // a nested message field (variant, options) holding arbitrary bytes
          s += RawField(rng_() % 2 ? 4 : 6, RawField(1 + static_cast<int>(rng_() % 3),
                                                     text_->Next()));
      }
    }
    return s;
  }

 private:
  std::mt19937_64 rng_;
  fuzz::TextGenerator* text_;
};

bool AllAsciiBlank(const std::string& s) {
  for (char c : s)
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r') return false;
  return true;
}

TEST(ValidationFuzz, ChecksAgreeWithTheirRulesOnRandomInput) {
  const double seconds = EnvNumber("MIXSERVE_FUZZ_SECONDS", 3);
  const auto seed = static_cast<uint64_t>(EnvNumber("MIXSERVE_FUZZ_SEED", 20261123));
  fuzz::TextGenerator text(seed, {"A man rides a horse.", "Ein Hund rennt \xc3\xbc" "ber die Wiese."});
  WireMutator wire(seed + 1, &text);
  v1::LimitsConfig limits;
  limits.set_max_text_bytes(512);
  limits.set_max_batch_texts(8);

  v1::TranslateRequest base;
  base.set_text("A man rides a horse.");
  base.set_source_language("en");
  base.set_target_language("de");
  base.mutable_variant()->set_name("en-de-base");
  base.mutable_options()->set_beam_size(2);
  base.set_reference("Ein Mann reitet.");
  base.set_request_id("r-1");
  const std::string base_bytes = base.SerializeAsString();
  v1::TranslateBatchRequest batch;
  batch.add_texts("A dog.");
  batch.add_texts("A cat.");
  batch.set_source_language("en");
  batch.set_target_language("de");
  const std::string batch_bytes = batch.SerializeAsString();

  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  long iterations = 0, parsed_ok = 0, accepted = 0;
  int failures = 0;
  auto fail = [&](const std::string& what, const std::string& input) {
    ADD_FAILURE() << what << "\n  seed " << seed << ", iteration " << iterations << "\n  input \""
                  << fuzz::Escape(input) << "\"";
    return ++failures >= 5;
  };
  while (iterations < 2000 || std::chrono::steady_clock::now() < until) {
    ++iterations;
    // 1. UTF-8 offsets agree with the table-driven oracle.
    const std::string t = text.Next();
    if (InvalidUtf8Offset(t) != fuzz::FirstIllFormedOffset(t) &&
        fail("InvalidUtf8Offset " + std::to_string(InvalidUtf8Offset(t)) + " != oracle " +
                 std::to_string(fuzz::FirstIllFormedOffset(t)), t))
      break;
    // 2. CheckText follows its documented rules, in order.
    const grpc::Status st = CheckText(t, "text", limits);
    const bool expect_ok = !t.empty() && t.size() <= 512 && fuzz::IsWellFormedUtf8(t) &&
                           !AllAsciiBlank(t);
    if (st.ok() != expect_ok &&
        fail("CheckText said " + st.error_message() + " (ok " + std::to_string(st.ok()) + ")", t))
      break;
    if (!st.ok() && (st.error_code() != grpc::StatusCode::INVALID_ARGUMENT ||
                     st.error_message().rfind("text ", 0) != 0) &&
        fail("CheckText error does not name the field: " + st.error_message(), t))
      break;
    // 3. Mutated wire bytes: parse, then check; never a crash, only clear INVALID_ARGUMENTs.
    const bool is_batch = iterations % 3 == 0;
    const std::string bytes = wire.Next(is_batch ? batch_bytes : base_bytes);
    grpc::Status ps, cs;
    if (is_batch) {
      v1::TranslateBatchRequest r;
      ps = ParseRequestBytes(bytes, &r);
      if (ps.ok()) cs = CheckBatchRequest(r, limits);
    } else {
      v1::TranslateRequest r;
      ps = ParseRequestBytes(bytes, &r);
      if (ps.ok()) {
        cs = CheckRequest(r, limits);
        // What passes the checks is safe to route and tokenize.
        if (cs.ok() && !(fuzz::IsWellFormedUtf8(r.text()) && !r.text().empty() &&
                         r.text().size() <= 512) &&
            fail("CheckRequest accepted bad text", bytes))
          break;
      }
    }
    if (!ps.ok() && (ps.error_code() != grpc::StatusCode::INVALID_ARGUMENT ||
                     ps.error_message().empty()) &&
        fail("ParseRequestBytes: " + ps.error_message(), bytes))
      break;
    parsed_ok += ps.ok();
    if (ps.ok()) {
      const bool known = cs.ok() || cs.error_code() == grpc::StatusCode::INVALID_ARGUMENT ||
                         cs.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED;
      if ((!known || (!cs.ok() && cs.error_message().empty())) &&
          fail("check gave " + std::to_string(cs.error_code()) + ": " + cs.error_message(), bytes))
        break;
      accepted += cs.ok();
    }
  }
  std::cout << "validation fuzz: seed " << seed << ", " << iterations << " texts and wire "
            << "messages (" << parsed_ok << " parsed, " << accepted << " passed the checks)\n";
}

}  // namespace
}  // namespace mixserve
