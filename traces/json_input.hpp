// File: traces/json_input.hpp
// The one parser entry for user JSON files that are read whole (trace manifests, model, topology and
// calibration files): nesting is bounded before nlohmann sees the text (its copy and dump recurse), and every
// nlohmann error (syntax, or a number like 1e999 out of range) becomes InputError(source, <the key being
// read>, ...).
// Usage:
//   nlohmann::json doc = rackep::parse_json_input<nlohmann::json>(text, path);
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "core/error.hpp"
#include "core/input_limits.hpp"

namespace rackep {

template <class Json>
Json parse_json_input(const std::string& text, const std::string& source) {
  check_json_depth(text, source);
  std::string key;  // the last object key read: where a bad value sits
  const typename Json::parser_callback_t track = [&key](int, typename Json::parse_event_t event,
                                                        Json& parsed) {
    if (event == Json::parse_event_t::key && parsed.is_string()) key = parsed.template get<std::string>();
    return true;
  };
  try {
    return Json::parse(text, track);
  } catch (const typename Json::exception& e) {
    throw InputError(source, key.empty() ? "json" : key, std::string("invalid JSON: ") + e.what());
  }
}

}  // namespace rackep
