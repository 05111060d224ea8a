#include "server/validation.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/stubs/logging.h>
#include <google/protobuf/unknown_field_set.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

#include "config/server_config.h"

namespace mixserve {

grpc::Status CheckText(const std::string& text, const std::string& what,
                       const v1::LimitsConfig& limits) {
  if (text.empty()) return {grpc::StatusCode::INVALID_ARGUMENT, what + " is empty"};
  if (limits.max_text_bytes() > 0 && text.size() > static_cast<size_t>(limits.max_text_bytes()))
    return {grpc::StatusCode::INVALID_ARGUMENT,
            what + " is " + std::to_string(text.size()) + " bytes, above the limit of " +
                std::to_string(limits.max_text_bytes())};
  long bad = InvalidUtf8Offset(text);
  if (bad >= 0)
    return {grpc::StatusCode::INVALID_ARGUMENT,
            what + " is not valid UTF-8 (byte offset " + std::to_string(bad) + ")"};
  bool blank = true;
  for (char c : text)
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r') blank = false;
  if (blank) return {grpc::StatusCode::INVALID_ARGUMENT, what + " holds only white space"};
  return grpc::Status::OK;
}

grpc::Status CheckOptions(const v1::DecodingOptions& o) {
  auto bad = [](const std::string& m) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "options." + m);
  };
  if (o.beam_size() < 0)
    return bad("beam_size is " + std::to_string(o.beam_size()) + "; must be 0 (default) to " +
               std::to_string(kMaxBeamSize));
  if (o.beam_size() > kMaxBeamSize)
    return bad("beam_size " + std::to_string(o.beam_size()) + " is above the maximum of " +
               std::to_string(kMaxBeamSize));
  if (o.max_output_tokens() < 0)
    return bad("max_output_tokens is negative (" + std::to_string(o.max_output_tokens()) + ")");
  if (!std::isfinite(o.length_penalty()) || o.length_penalty() < 0)
    return bad("length_penalty must be a finite non-negative number");
  if (o.n_best() < 0) return bad("n_best is negative (" + std::to_string(o.n_best()) + ")");
  // beam_size 0 is resolved against the variant later; an explicit beam bounds n_best here.
  if (o.beam_size() > 0 && o.n_best() > o.beam_size())
    return bad("n_best " + std::to_string(o.n_best()) + " is above beam_size " +
               std::to_string(o.beam_size()));
  return grpc::Status::OK;
}

grpc::Status CheckVariantRef(const v1::VariantRef& v) {
  if (v.name().empty()) {
    if (v.version() != 0)
      return {grpc::StatusCode::INVALID_ARGUMENT, "variant.version is set without a name"};
    return grpc::Status::OK;
  }
  if (!IsSafeModelName(v.name()))
    return {grpc::StatusCode::INVALID_ARGUMENT,
            "variant.name '" + v.name() + "' is not a valid model name"};
  if (v.version() < 0)
    return {grpc::StatusCode::INVALID_ARGUMENT,
            "variant.version is negative (" + std::to_string(v.version()) + ")"};
  return grpc::Status::OK;
}

namespace {

// Shows a client string in an error message: at most 40 bytes (cut before a character, not
// inside one), control characters escaped.
std::string Shown(const std::string& s) {
  size_t end = std::min<size_t>(s.size(), 40);
  while (end < s.size() && end > 0 && (static_cast<unsigned char>(s[end]) & 0xC0) == 0x80) --end;
  std::string out;
  char buf[8];
  for (size_t i = 0; i < end; ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7F) {
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return end < s.size() ? out + "..." : out;
}

grpc::Status CheckLanguage(const std::string& code, const char* field) {
  bool ok = code.size() <= kMaxLanguageBytes;
  for (char c : code)
    ok = ok && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '-' || c == '_');
  if (ok) return grpc::Status::OK;
  return {grpc::StatusCode::INVALID_ARGUMENT,
          std::string(field) + " '" + Shown(code) +
              "' is not a language code (letters, digits, '-' and '_', at most " +
              std::to_string(kMaxLanguageBytes) + " bytes)"};
}

}  // namespace

grpc::Status CheckLanguages(const std::string& source, const std::string& target,
                            const v1::VariantRef& variant) {
  grpc::Status s = CheckLanguage(source, "source_language");
  if (!s.ok()) return s;
  if (!(s = CheckLanguage(target, "target_language")).ok()) return s;
  if (variant.name().empty() && (source.empty() || target.empty()))
    return {grpc::StatusCode::INVALID_ARGUMENT,
            "source_language and target_language are required when no variant is named"};
  return grpc::Status::OK;
}

grpc::Status CheckRequestId(const std::string& id) {
  if (id.size() > kMaxRequestIdBytes)
    return {grpc::StatusCode::INVALID_ARGUMENT,
            "request_id is " + std::to_string(id.size()) + " bytes, above the limit of " +
                std::to_string(kMaxRequestIdBytes)};
  for (unsigned char c : id)
    if (c < 0x20 || c == 0x7F)
      return {grpc::StatusCode::INVALID_ARGUMENT, "request_id holds a control character"};
  return grpc::Status::OK;
}

namespace {

// Walks wire data (parsed without UTF-8 checks) along the message's descriptor and describes
// the first string field that is not valid UTF-8; "" when there is none.
std::string FindBadString(const google::protobuf::UnknownFieldSet& fields,
                          const google::protobuf::Descriptor& type, const std::string& prefix) {
  using google::protobuf::FieldDescriptor;
  using google::protobuf::UnknownField;
  std::map<int, int> seen;  // occurrences so far per field number (index of repeated ones)
  for (int i = 0; i < fields.field_count(); ++i) {
    const UnknownField& f = fields.field(i);
    int index = seen[f.number()]++;
    const FieldDescriptor* fd = type.FindFieldByNumber(f.number());
    if (!fd || f.type() != UnknownField::TYPE_LENGTH_DELIMITED) continue;
    std::string name = prefix + fd->name();
    if (fd->is_repeated()) name += "[" + std::to_string(index) + "]";
    if (fd->type() == FieldDescriptor::TYPE_STRING) {
      long bad = InvalidUtf8Offset(f.length_delimited());
      if (bad >= 0)
        return name + " is not valid UTF-8 (byte offset " + std::to_string(bad) + ")";
    } else if (fd->type() == FieldDescriptor::TYPE_MESSAGE) {
      google::protobuf::UnknownFieldSet inner;
      if (!inner.ParseFromString(f.length_delimited())) continue;
      std::string found = FindBadString(inner, *fd->message_type(), name + ".");
      if (!found.empty()) return found;
    }
  }
  return "";
}

}  // namespace

grpc::Status ParseRequestBytes(const std::string& bytes, google::protobuf::Message* message) {
  {
    // A client must not be able to fill the log: protobuf would print an ERROR line for
    // every string field that is not UTF-8; the refusal below names it, once, instead.
    google::protobuf::LogSilencer quiet;
    if (message->ParseFromString(bytes)) return grpc::Status::OK;
  }
  message->Clear();
  google::protobuf::UnknownFieldSet fields;
  if (fields.ParseFromString(bytes)) {
    std::string bad = FindBadString(fields, *message->GetDescriptor(), "");
    if (!bad.empty()) return {grpc::StatusCode::INVALID_ARGUMENT, bad};
  }
  return {grpc::StatusCode::INVALID_ARGUMENT,
          "the request is not a valid " + message->GetDescriptor()->full_name() + " message"};
}

grpc::Status CheckRequest(const v1::TranslateRequest& r, const v1::LimitsConfig& limits) {
  grpc::Status s = CheckText(r.text(), "text", limits);
  if (!s.ok()) return s;
  if (!(s = CheckRequestId(r.request_id())).ok()) return s;
  if (!(s = CheckVariantRef(r.variant())).ok()) return s;
  if (!(s = CheckLanguages(r.source_language(), r.target_language(), r.variant())).ok())
    return s;
  if (!r.reference().empty() && InvalidUtf8Offset(r.reference()) >= 0)
    return {grpc::StatusCode::INVALID_ARGUMENT, "reference is not valid UTF-8"};
  return CheckOptions(r.options());
}

grpc::Status CheckBatchRequest(const v1::TranslateBatchRequest& r,
                               const v1::LimitsConfig& limits) {
  if (r.texts_size() == 0) return {grpc::StatusCode::INVALID_ARGUMENT, "texts is empty"};
  if (grpc::Status s = CheckRequestId(r.request_id()); !s.ok()) return s;
  if (limits.max_batch_texts() > 0 && r.texts_size() > limits.max_batch_texts())
    return {grpc::StatusCode::RESOURCE_EXHAUSTED,
            "batch of " + std::to_string(r.texts_size()) + " texts is above the limit of " +
                std::to_string(limits.max_batch_texts())};
  if (r.references_size() != 0 && r.references_size() != r.texts_size())
    return {grpc::StatusCode::INVALID_ARGUMENT,
            "references has " + std::to_string(r.references_size()) +
                " entries; expected none or one per text (" + std::to_string(r.texts_size()) +
                ")"};
  for (int i = 0; i < r.texts_size(); ++i) {
    grpc::Status s = CheckText(r.texts(i), "texts[" + std::to_string(i) + "]", limits);
    if (!s.ok()) return s;
  }
  for (int i = 0; i < r.references_size(); ++i)
    if (InvalidUtf8Offset(r.references(i)) >= 0)
      return {grpc::StatusCode::INVALID_ARGUMENT,
              "references[" + std::to_string(i) + "] is not valid UTF-8"};
  grpc::Status s = CheckVariantRef(r.variant());
  if (!s.ok()) return s;
  if (!(s = CheckLanguages(r.source_language(), r.target_language(), r.variant())).ok())
    return s;
  return CheckOptions(r.options());
}

grpc::Status CheckDocumentRequest(const v1::TranslateDocumentRequest& r,
                                  const v1::LimitsConfig& limits) {
  const std::string& text = r.text();
  if (limits.max_document_bytes() > 0 &&
      text.size() > static_cast<size_t>(limits.max_document_bytes()))
    return {grpc::StatusCode::INVALID_ARGUMENT,
            "text is " + std::to_string(text.size()) + " bytes, above the limit of " +
                std::to_string(limits.max_document_bytes()) + " (limits.max_document_bytes)"};
  v1::LimitsConfig unbounded = limits;
  unbounded.set_max_text_bytes(0);
  grpc::Status s = CheckText(text, "text", unbounded);
  if (!s.ok()) return s;
  if (!(s = CheckRequestId(r.request_id())).ok()) return s;
  if (!(s = CheckVariantRef(r.variant())).ok()) return s;
  if (!(s = CheckLanguages(r.source_language(), r.target_language(), r.variant())).ok())
    return s;
  if (r.options().n_best() > 1)
    return {grpc::StatusCode::INVALID_ARGUMENT,
            "options.n_best is not available for documents (use Translate or TranslateBatch)"};
  return CheckOptions(r.options());
}

}  // namespace mixserve
