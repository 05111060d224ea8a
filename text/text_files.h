// Reading line-oriented text corpora, plain or gzip-compressed (detected from the content).
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

namespace mixserve {

// Calls on_line for each line of the file (without its "\n" or "\r\n") until it returns false.
// Reads .gz and plain files alike. Throws std::runtime_error naming the path on failure.
void ForEachTextLine(const std::string& path, const std::function<bool(const std::string&)>& on_line);

// All lines of a file, or its first max_lines when max_lines > 0.
std::vector<std::string> ReadTextLines(const std::string& path, std::size_t max_lines = 0);

}  // namespace mixserve
