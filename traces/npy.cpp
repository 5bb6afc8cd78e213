#include "traces/npy.hpp"

#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <set>

#include "core/error.hpp"
#include "core/input_limits.hpp"

// NOTE: chunks are written and read as raw memory; the '<' (little-endian) descr is only true on such hosts.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "rackep trace files assume a little-endian host");

namespace rackep {
namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicLen = 6;
constexpr size_t kAlign = 64;                // numpy.lib.format.ARRAY_ALIGN
constexpr size_t kGrowthAxisMaxDigits = 21;  // numpy.lib.format.GROWTH_AXIS_MAX_DIGITS
constexpr size_t kMaxHeaderBytes = 1 << 20;

std::string shape_repr(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) s += ", ";
    s += std::to_string(shape[i]);
  }
  if (shape.size() == 1) s += ",";
  return s + ")";
}

// A strict reader of the Python dict literal that numpy writes.
class HeaderParser {
 public:
  HeaderParser(const std::string& text, const std::string& source) : text_(text), source_(source) {}

  NpyArrayInfo parse() {
    NpyArrayInfo info;
    std::set<std::string> seen;
    skip_spaces();
    expect('{', "header");
    skip_spaces();
    while (peek() != '}') {
      const std::string key = parse_string("header");
      if (!seen.insert(key).second) fail(key, "key appears twice");
      skip_spaces();
      expect(':', "header");
      skip_spaces();
      if (key == "descr") {
        const std::string d = parse_string("descr");
        if (d == "<i4") {
          info.dtype = NpyDtype::kInt32;
        } else if (d == "<i8") {
          info.dtype = NpyDtype::kInt64;
        } else {
          fail("descr", "unsupported dtype '" + d + "' (traces use '<i4' and '<i8')");
        }
      } else if (key == "fortran_order") {
        if (text_.compare(pos_, 5, "False") == 0) {
          pos_ += 5;
        } else if (text_.compare(pos_, 4, "True") == 0) {
          fail("fortran_order", "Fortran-order arrays are not supported; write C order");
        } else {
          fail("fortran_order", "expected True or False");
        }
      } else if (key == "shape") {
        info.shape = parse_shape();
      } else {
        fail(key, "unknown key in .npy header (expected descr, fortran_order, shape)");
      }
      skip_spaces();
      if (peek() == ',') {
        ++pos_;
        skip_spaces();
      } else if (peek() != '}') {
        fail("header", "expected ',' or '}' at byte " + std::to_string(pos_));
      }
    }
    ++pos_;
    for (const char* k : {"descr", "fortran_order", "shape"})
      if (seen.count(k) == 0) fail(k, "missing from .npy header");
    while (pos_ < text_.size() && text_[pos_] == ' ') ++pos_;
    if (pos_ + 1 != text_.size() || text_[pos_] != '\n')
      fail("header", "must end with spaces and a single newline");
    info.num_elements = 1;
    for (int64_t d : info.shape) {
      if (__builtin_mul_overflow(info.num_elements, d, &info.num_elements))
        fail("shape", "element count overflows");
    }
    return info;
  }

 private:
  [[noreturn]] void fail(const std::string& field, const std::string& msg) const {
    throw InputError(source_, field, msg);
  }
  char peek() const { return pos_ < text_.size() ? text_[pos_] : '\0'; }
  void skip_spaces() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t')) ++pos_;
  }
  void expect(char c, const char* field) {
    if (peek() != c) fail(field, std::string("expected '") + c + "' at byte " + std::to_string(pos_));
    ++pos_;
  }
  std::string parse_string(const char* field) {
    const char quote = peek();
    if (quote != '\'' && quote != '"')
      fail(field, "expected a quoted string at byte " + std::to_string(pos_));
    const size_t end = text_.find(quote, pos_ + 1);
    if (end == std::string::npos) fail(field, "unterminated string");
    std::string s = text_.substr(pos_ + 1, end - pos_ - 1);
    pos_ = end + 1;
    return s;
  }
  std::vector<int64_t> parse_shape() {
    expect('(', "shape");
    std::vector<int64_t> shape;
    bool trailing_comma = false;
    skip_spaces();
    while (peek() != ')') {
      if (peek() < '0' || peek() > '9')
        fail("shape", "expected a non-negative integer at byte " + std::to_string(pos_));
      int64_t v = 0;
      const size_t start = pos_;
      while (peek() >= '0' && peek() <= '9') {
        if (v > (std::numeric_limits<int64_t>::max() - 9) / 10) fail("shape", "dimension too large");
        v = v * 10 + (text_[pos_++] - '0');
      }
      if (pos_ - start > 1 && text_[start] == '0') fail("shape", "leading zero in a dimension");
      shape.push_back(v);
      skip_spaces();
      trailing_comma = false;
      if (peek() == ',') {
        ++pos_;
        trailing_comma = true;
        skip_spaces();
      } else if (peek() != ')') {
        fail("shape", "expected ',' or ')' at byte " + std::to_string(pos_));
      }
    }
    ++pos_;
    if (shape.size() == 1 && !trailing_comma) fail("shape", "'(n)' is not a tuple; numpy writes '(n,)'");
    return shape;
  }

  const std::string& text_;
  const std::string& source_;
  size_t pos_ = 0;
};

}  // namespace

const char* npy_descr(NpyDtype dtype) {
  return dtype == NpyDtype::kInt32 ? "<i4" : "<i8";
}

int npy_itemsize(NpyDtype dtype) {
  return dtype == NpyDtype::kInt32 ? 4 : 8;
}

std::string npy_header(NpyDtype dtype, const std::vector<int64_t>& shape) {
  std::string dict = std::string("{'descr': '") + npy_descr(dtype) +
                     "', 'fortran_order': False, 'shape': " + shape_repr(shape) + ", }";
  if (!shape.empty()) {
    const size_t digits = std::to_string(shape[0]).size();
    if (digits < kGrowthAxisMaxDigits) dict.append(kGrowthAxisMaxDigits - digits, ' ');
  }
  // numpy: padlen = ALIGN - ((magic 8 + length field 2 + len(header) + 1) % ALIGN), in [1, ALIGN].
  const size_t unpadded = kMagicLen + 2 + 2 + dict.size() + 1;
  const size_t padlen = kAlign - unpadded % kAlign;
  dict.append(padlen, ' ');
  dict.push_back('\n');
  RACKEP_CHECK(dict.size() <= 0xFFFF, "npy v1.0 header too long");
  std::string out(kMagic, kMagicLen);
  out.push_back('\x01');
  out.push_back('\x00');
  out.push_back(static_cast<char>(dict.size() & 0xFF));
  out.push_back(static_cast<char>((dict.size() >> 8) & 0xFF));
  return out + dict;
}

NpyArrayInfo parse_npy_header(const std::string& bytes, const std::string& source) {
  return parse_npy_header(bytes.data(), bytes.size(), source);
}

NpyArrayInfo parse_npy_header(const char* bytes, size_t size, const std::string& source) {
  if (size < kMagicLen + 2 || std::memcmp(bytes, kMagic, kMagicLen) != 0)
    throw InputError(source, "magic", "not a NumPy .npy file (missing \\x93NUMPY)");
  const auto major = static_cast<unsigned char>(bytes[6]);
  const auto minor = static_cast<unsigned char>(bytes[7]);
  if (!((major == 1 || major == 2) && minor == 0))
    throw InputError(source, "version",
                     "unsupported .npy version " + std::to_string(major) + "." + std::to_string(minor));
  const size_t len_bytes = major == 1 ? 2 : 4;
  if (size < kMagicLen + 2 + len_bytes)
    throw InputError(source, "header", "file ends inside the .npy preamble");
  size_t header_len = 0;
  for (size_t i = 0; i < len_bytes; ++i)
    header_len |= static_cast<size_t>(static_cast<unsigned char>(bytes[8 + i])) << (8 * i);
  const size_t start = kMagicLen + 2 + len_bytes;
  if (header_len > kMaxHeaderBytes) throw InputError(source, "header", "header length is implausibly large");
  if (size < start + header_len) throw InputError(source, "header", "file ends inside the .npy header");
  const std::string text(bytes + start, header_len);
  NpyArrayInfo info = HeaderParser(text, source).parse();
  info.data_offset_bytes = static_cast<int64_t>(start + header_len);
  return info;
}

NpyArrayInfo read_npy_info(const std::string& path) {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f) throw InputError(path, "file", "cannot open for reading");
  std::string head(12, '\0');
  head.resize(std::fread(head.data(), 1, head.size(), f.get()));
  if (head.size() >= 12 && head.compare(0, kMagicLen, kMagic, kMagicLen) == 0) {
    const size_t len_bytes = static_cast<unsigned char>(head[6]) == 1 ? 2 : 4;
    size_t header_len = 0;
    for (size_t i = 0; i < len_bytes; ++i)
      header_len |= static_cast<size_t>(static_cast<unsigned char>(head[8 + i])) << (8 * i);
    if (header_len <= kMaxHeaderBytes) {
      const size_t want = kMagicLen + 2 + len_bytes + header_len;
      if (want > head.size()) {
        const size_t have = head.size();
        head.resize(want);
        head.resize(have + std::fread(head.data() + have, 1, want - have, f.get()));
      }
    }
  }
  NpyArrayInfo info = parse_npy_header(head, path);
  if (std::fseek(f.get(), 0, SEEK_END) != 0) throw InputError(path, "file", "cannot seek");
  const long size = std::ftell(f.get());
  const int64_t expected =
      checked_add(info.data_offset_bytes,
                  checked_mul(info.num_elements, npy_itemsize(info.dtype), path, "shape"), path, "shape");
  if (size != expected)
    throw InputError(path, "size",
                     "file has " + std::to_string(size) + " bytes but its header promises " +
                         std::to_string(expected) + (size < expected ? " (truncated)" : " (trailing bytes)"));
  return info;
}

}  // namespace rackep
