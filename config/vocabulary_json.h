// A vocabulary file of imported models: one JSON object of piece -> id (MarianMT's
// vocab.json), read through protobuf's JSON mapping (google.protobuf.Struct). The interface is
// plain C++ so that Torch and tokenizer code can use it.
#pragma once

#include <string>
#include <vector>

namespace mixserve {

// Reads `path` into *pieces (id -> piece). The ids must be the integers 0..n-1, each once.
// On failure returns false and sets *error to a message naming the file and the piece or id
// at fault: not a JSON object, an id that is not a non-negative integer, an id given twice, a
// missing id.
bool ReadVocabularyJson(const std::string& path, std::vector<std::string>* pieces,
                        std::string* error);

}  // namespace mixserve
