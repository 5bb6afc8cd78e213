#include "core/input_limits.hpp"

#include "core/error.hpp"

namespace rackep {

int64_t checked_add(int64_t a, int64_t b, const std::string& source, const std::string& field) {
  int64_t out = 0;
  if (__builtin_add_overflow(a, b, &out))
    throw InputError(source, field, std::to_string(a) + " + " + std::to_string(b) + " overflows 64 bits");
  return out;
}

int64_t checked_mul(int64_t a, int64_t b, const std::string& source, const std::string& field) {
  int64_t out = 0;
  if (__builtin_mul_overflow(a, b, &out))
    throw InputError(source, field, std::to_string(a) + " x " + std::to_string(b) + " overflows 64 bits");
  return out;
}

void check_json_depth(std::string_view text, const std::string& source, int max_depth) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth)
        throw InputError(
            source, "json",
            "nested deeper than " + std::to_string(max_depth) + " levels at byte " + std::to_string(i));
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
}

}  // namespace rackep
