// File: core/input_limits.hpp
// The limits every parser of user files applies before it trusts a number it read (README "Bad input"):
// checked arithmetic on sizes, offsets and strides, one nesting bound for JSON and pickle, and the largest
// expert count any part of rackep accepts. A violation is an InputError naming the file and the field.
// Usage:
//   const int64_t bytes = rackep::checked_mul(n, 8, path, "shape");        // throws on overflow
//   const int64_t end = rackep::checked_add(offset, bytes, path, "offset");
//   rackep::check_json_depth(text, path);   // before nlohmann parses (its copy and dump recurse)
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace rackep {

/// Deepest nesting of arrays/objects accepted in a JSON file, and of containers in a pickle. Real files
/// nest fewer than 10 levels; the bound keeps every recursive walk (copy, dump, destruction) shallow.
constexpr int kMaxNestingDepth = 64;

/// Most routed experts of a model or trace (expert ids are stored in 16 bits).
constexpr int kMaxExperts = 65536;

/// a + b, or InputError(source, field, "... overflows") when it does not fit in int64.
int64_t checked_add(int64_t a, int64_t b, const std::string& source, const std::string& field);
/// a * b, or InputError(source, field, "... overflows") when it does not fit in int64.
int64_t checked_mul(int64_t a, int64_t b, const std::string& source, const std::string& field);

/// Throws InputError(source, "json", ...) when arrays/objects in `text` nest deeper than `max_depth`
/// (brackets inside strings are skipped). Call before parsing user JSON.
void check_json_depth(std::string_view text, const std::string& source, int max_depth = kMaxNestingDepth);

}  // namespace rackep
