// Shapes of the CPU product tests (cpu_linear_test.cc, cpu_int8_test.cc): rows x in -> out,
// with or without bias, printed and named the same way in both.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <ostream>
#include <string>

namespace mixserve::model::testing {

struct LinearCase {
  int64_t rows, in, out;
  bool bias;
};

inline void PrintTo(const LinearCase& c, std::ostream* os) {
  *os << c.rows << " rows, " << c.in << " -> " << c.out << (c.bias ? ", bias" : "");
}

// The parameterized test's name: "<rows>x<in>to<out>[_bias]".
inline std::string LinearCaseName(const ::testing::TestParamInfo<LinearCase>& info) {
  const LinearCase& c = info.param;
  return std::to_string(c.rows) + "x" + std::to_string(c.in) + "to" + std::to_string(c.out) +
         (c.bias ? "_bias" : "");
}

}  // namespace mixserve::model::testing
