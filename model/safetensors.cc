#include "model/safetensors.h"

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "config/safetensors_header.h"

namespace mixserve::model {
namespace {

namespace fs = std::filesystem;

struct Dtype {
  const char* name;
  torch::ScalarType type;
};
constexpr Dtype kDtypes[] = {{"F32", torch::kFloat},  {"F16", torch::kHalf},
                             {"BF16", torch::kBFloat16}, {"F64", torch::kDouble},
                             {"I64", torch::kLong},   {"I32", torch::kInt}};

std::string Shape(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

uint64_t ReadU64(const unsigned char* p) {  // little-endian, whatever the host
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

void WriteU64(std::ostream& out, uint64_t v) {
  char b[8];
  for (int i = 0; i < 8; ++i) b[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  out.write(b, 8);
}

}  // namespace

NamedTensors ReadSafetensors(const std::string& path) {
  std::error_code ec;
  const uint64_t size = fs::file_size(path, ec);
  if (ec) throw std::runtime_error("cannot read " + path + ": " + ec.message());
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  unsigned char len[8];
  if (size < 8 || !in.read(reinterpret_cast<char*>(len), 8))
    throw std::runtime_error(path + ": truncated: " + std::to_string(size) +
                             " bytes, shorter than the 8-byte header length");
  const uint64_t n = ReadU64(len);
  if (n > size - 8)
    throw std::runtime_error(path + ": truncated: the header length says " + std::to_string(n) +
                             " bytes, but only " + std::to_string(size - 8) + " follow");
  std::string json(n, '\0');
  if (!in.read(json.data(), static_cast<std::streamsize>(n)))
    throw std::runtime_error("cannot read the header of " + path);
  const SafetensorsHeader header = ParseSafetensorsHeader(json, path);
  const uint64_t data = size - 8 - n;  // bytes after the header
  NamedTensors out;
  for (const auto& e : header.tensors) {
    const std::string what = path + ": tensor '" + e.name + "'";
    const Dtype* dt = nullptr;
    for (const auto& d : kDtypes)
      if (e.dtype == d.name) dt = &d;
    if (!dt)
      throw std::runtime_error(what + ": unknown dtype '" + e.dtype +
                               "' (F32, F16, BF16, F64, I64, I32)");
    if (e.end > data)
      throw std::runtime_error(what + ": truncated: data_offsets [" + std::to_string(e.begin) +
                               ", " + std::to_string(e.end) + "] reach beyond the " +
                               std::to_string(data) + " bytes of data in the file");
    // The size from the shape, checked against the offsets before anything is allocated.
    uint64_t bytes = c10::elementSize(dt->type);
    bool overflow = false;
    for (int64_t d : e.shape) {
      const auto u = static_cast<uint64_t>(d);
      if (u != 0 && bytes > UINT64_MAX / u) overflow = true;
      bytes *= u;
    }
    if (overflow || bytes != e.end - e.begin)
      throw std::runtime_error(what + ": shape " + Shape(e.shape) + " of " + e.dtype +
                               (overflow ? " is too large" : " is " + std::to_string(bytes) +
                                                                " bytes") +
                               ", but its data_offsets [" + std::to_string(e.begin) + ", " +
                               std::to_string(e.end) + "] hold " +
                               std::to_string(e.end - e.begin));
    auto t = torch::empty(e.shape, torch::TensorOptions().dtype(dt->type));
    in.seekg(static_cast<std::streamoff>(8 + n + e.begin));
    if (!in.read(static_cast<char*>(t.data_ptr()), static_cast<std::streamsize>(bytes)))
      throw std::runtime_error(what + ": cannot read its data");
    out.emplace_back(e.name, t);
  }
  return out;
}

void WriteSafetensors(const std::string& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata) {
  SafetensorsHeader header;
  header.metadata = metadata;
  std::vector<torch::Tensor> data;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    auto c = t.detach().to(torch::kCPU).contiguous();
    const Dtype* dt = nullptr;
    for (const auto& d : kDtypes)
      if (c.scalar_type() == d.type) dt = &d;
    if (!dt)
      throw std::runtime_error("cannot write " + path + ": tensor '" + name + "' has dtype " +
                               std::string(c.dtype().name()) + ", which safetensors files of "
                               "mixserve do not hold");
    SafetensorsEntry e;
    e.name = name;
    e.dtype = dt->name;
    e.shape = c.sizes().vec();
    e.begin = offset;
    offset += static_cast<uint64_t>(c.numel()) * c.element_size();
    e.end = offset;
    header.tensors.push_back(std::move(e));
    data.push_back(c);
  }
  std::string json = FormatSafetensorsHeader(header);
  json.append((8 - json.size() % 8) % 8, ' ');  // the data starts 8-byte aligned
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  WriteU64(out, json.size());
  out.write(json.data(), static_cast<std::streamsize>(json.size()));
  for (const auto& c : data)
    out.write(static_cast<const char*>(c.data_ptr()),
              static_cast<std::streamsize>(c.numel() * c.element_size()));
  out.close();
  if (!out) throw std::runtime_error("cannot write " + path);
}

}  // namespace mixserve::model
