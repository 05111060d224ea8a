// A small result table written as CSV (RFC 4180 quoting) and as a markdown table.
#pragma once

#include <string>
#include <vector>

namespace mixserve::offline {

struct Table {
  std::vector<std::string> columns;
  std::vector<std::vector<std::string>> rows;  // each as long as `columns`

  void Add(std::vector<std::string> row);  // throws when the width differs
  std::string Csv() const;
  std::string Markdown() const;
};

// Parses CSV text written by Table::Csv (quoted fields, embedded commas/quotes/newlines).
std::vector<std::vector<std::string>> ParseCsv(const std::string& text);

}  // namespace mixserve::offline
