// File: traces/json_input.hpp
// The one parser entry for user JSON files that are read whole (trace manifests, model, topology and
// calibration files): nesting is bounded before nlohmann sees the text (its copy and dump recurse), and every
// nlohmann error becomes an InputError naming `source`: a syntax error with field `syntax_field`, a value out
// of range (a number like 1e999) with the dotted path of its key, e.g. "hidden.value".
// Usage:
//   nlohmann::json doc = rackep::parse_json_input<nlohmann::json>(text, path);
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/input_limits.hpp"

namespace rackep {

template <class Json>
Json parse_json_input(const std::string& text, const std::string& source,
                      const std::string& syntax_field = "json") {
  check_json_depth(text, source);
  // The object keys on the way to the value being read (by depth), for "where": "hidden.value".
  std::vector<std::string> path;
  const typename Json::parser_callback_t track = [&path](int depth, typename Json::parse_event_t event,
                                                         Json& parsed) {
    if (event == Json::parse_event_t::key && parsed.is_string() && depth > 0) {
      path.resize(static_cast<size_t>(depth));
      path.back() = parsed.template get<std::string>();
    }
    return true;
  };
  try {
    return Json::parse(text, track);
  } catch (const typename Json::parse_error& e) {
    throw InputError(source, syntax_field, std::string("invalid JSON: ") + e.what());
  } catch (const typename Json::exception& e) {  // a value out of range (1e999): name where it is
    std::string where;
    for (const std::string& k : path)
      if (!k.empty()) where += (where.empty() ? "" : ".") + k;
    throw InputError(source, where.empty() ? syntax_field : where, std::string("invalid JSON: ") + e.what());
  }
}

}  // namespace rackep
