// JSON files of Hugging Face model directories (config.json, generation_config.json,
// tokenizer_config.json, vocab.json) read through protobuf's JSON mapping into
// google.protobuf.Struct, and handed out as plain C++ values: no protobuf type appears here,
// so Torch code can use it.
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <vector>

namespace mixserve {

// One JSON value.
struct HfJsonValue {
  enum class Kind { kNull, kNumber, kString, kBool, kList, kObject };
  Kind kind = Kind::kNull;
  double number = 0;
  std::string string;
  bool boolean = false;
  std::vector<HfJsonValue> list;                // kList
  std::map<std::string, HfJsonValue> object;    // kObject
};

// The top-level fields of a JSON object. The accessors throw std::runtime_error
// "<source>: field '<name>' ..." for a missing field (those without a fallback) or a value of
// another type; a field set to null counts as missing.
class HfJsonObject {
 public:
  HfJsonObject() = default;
  HfJsonObject(std::string source, std::map<std::string, HfJsonValue> fields)
      : source_(std::move(source)), fields_(std::move(fields)) {}

  const std::string& source() const { return source_; }
  const std::map<std::string, HfJsonValue>& fields() const { return fields_; }
  bool Has(const std::string& name) const;  // present and not null

  std::string String(const std::string& name) const;
  std::string String(const std::string& name, const std::string& fallback) const;
  int Int(const std::string& name) const;  // an integral number within int's range
  int Int(const std::string& name, int fallback) const;
  double Number(const std::string& name) const;
  double Number(const std::string& name, double fallback) const;
  bool Bool(const std::string& name) const;
  bool Bool(const std::string& name, bool fallback) const;
  // A list of lists of integers (e.g. bad_words_ids); empty when absent.
  std::vector<std::vector<int>> IntLists(const std::string& name) const;

 private:
  const HfJsonValue& Get(const std::string& name, HfJsonValue::Kind kind,
                         const char* expected) const;
  std::string source_;
  std::map<std::string, HfJsonValue> fields_;
};

// Parses a JSON object. Throws std::runtime_error naming `source` for malformed JSON or a
// value that is not an object.
HfJsonObject ParseHfJsonObject(const std::string& text, const std::string& source);
// The same for a file (errors name the path).
HfJsonObject ReadHfJsonObject(const std::string& path);

// What an import needs of a vocab.json (an object of piece -> id, read by ReadVocabularyJson):
// the number of entries and the ids of `pieces` (-1 where absent). Throws std::runtime_error
// naming the file and the piece or id at fault (ids must be 0..n-1, each once).
struct HfVocabularySummary {
  std::size_t entries = 0;
  std::map<std::string, int> ids;
};
HfVocabularySummary ReadHfVocabularySummary(const std::string& path,
                                            const std::vector<std::string>& pieces);

}  // namespace mixserve
