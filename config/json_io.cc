#include "config/json_io.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/util/json_util.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>
#include <stdexcept>

namespace mixserve {

namespace gp = google::protobuf;

std::string MessageToJson(const gp::Message& message, bool pretty, bool skip_defaults) {
  gp::util::JsonPrintOptions o;
  o.preserve_proto_field_names = true;
  o.always_print_primitive_fields = !skip_defaults;  // zeros and empty lists too, as before
  o.add_whitespace = pretty;
  std::string out;
  const auto status = gp::util::MessageToJsonString(message, &out, o);
  if (!status.ok())
    throw std::runtime_error("cannot write " + message.GetDescriptor()->full_name() +
                             " as JSON: " + status.ToString());
  return out;  // add_whitespace ends with a newline
}

void JsonToMessage(const std::string& text, const std::string& source, gp::Message* message) {
  message->Clear();
  gp::util::JsonParseOptions o;
  o.ignore_unknown_fields = false;
  const auto status = gp::util::JsonStringToMessage(text, message, o);
  if (!status.ok())
    throw std::runtime_error(source + ": not a valid " + message->GetDescriptor()->full_name() +
                             " (proto/mixserve/v1/records.proto): " +
                             std::string(status.message()));
}

void FillMessage(const FlatRecord& record, const std::string& what, gp::Message* message) {
  const gp::Descriptor* d = message->GetDescriptor();
  const gp::Reflection* r = message->GetReflection();
  auto field = [&](const std::string& name) {
    const gp::FieldDescriptor* f = d->FindFieldByName(name);
    if (!f || f->is_repeated() || f->cpp_type() == gp::FieldDescriptor::CPPTYPE_MESSAGE)
      throw std::invalid_argument(what + ": '" + name + "' is not a field of " + d->full_name() +
                                  " (proto/mixserve/v1/records.proto)");
    return f;
  };
  for (const auto& [name, value] : record.strings) {
    const gp::FieldDescriptor* f = field(name);
    if (f->cpp_type() != gp::FieldDescriptor::CPPTYPE_STRING)
      throw std::invalid_argument(what + ": field '" + name + "' of " + d->full_name() +
                                  " holds a number, not a string");
    r->SetString(message, f, value);
  }
  for (const auto& [name, value] : record.numbers) {
    const gp::FieldDescriptor* f = field(name);
    switch (f->cpp_type()) {
      case gp::FieldDescriptor::CPPTYPE_DOUBLE:
        if (std::isfinite(value)) r->SetDouble(message, f, value);
        break;
      case gp::FieldDescriptor::CPPTYPE_INT32:
        if (!std::isfinite(value)) break;
        if (value != std::floor(value) || value < std::numeric_limits<int32_t>::min() ||
            value > std::numeric_limits<int32_t>::max())
          throw std::invalid_argument(what + ": field '" + name + "' of " + d->full_name() +
                                      " is a 32-bit integer, got " + std::to_string(value));
        r->SetInt32(message, f, static_cast<int32_t>(value));
        break;
      default:
        throw std::invalid_argument(what + ": field '" + name + "' of " + d->full_name() +
                                    " holds a string, not a number");
    }
  }
}

FlatRecord FlattenMessage(const gp::Message& message) {
  FlatRecord out;
  const gp::Descriptor* d = message.GetDescriptor();
  const gp::Reflection* r = message.GetReflection();
  for (int i = 0; i < d->field_count(); ++i) {
    const gp::FieldDescriptor* f = d->field(i);
    if (f->is_repeated() || !r->HasField(message, f)) continue;
    switch (f->cpp_type()) {
      case gp::FieldDescriptor::CPPTYPE_STRING:
        out.strings[f->name()] = r->GetString(message, f);
        break;
      case gp::FieldDescriptor::CPPTYPE_DOUBLE:
        out.numbers[f->name()] = r->GetDouble(message, f);
        break;
      case gp::FieldDescriptor::CPPTYPE_INT32:
        out.numbers[f->name()] = r->GetInt32(message, f);
        break;
      default:
        break;
    }
  }
  return out;
}

std::string ReadTextFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open " + path);
  std::ostringstream s;
  s << f.rdbuf();
  if (f.bad()) throw std::runtime_error("cannot read " + path);
  return s.str();
}

void WriteTextFile(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << text;
  f.close();
  if (!f) throw std::runtime_error("cannot write " + path);
}

}  // namespace mixserve
