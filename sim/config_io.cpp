#include "sim/config_io.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "core/error.hpp"
#include "traces/json_input.hpp"

namespace rackep::sim {

namespace fs = std::filesystem;

nlohmann::json to_json(const Sourced& s) {
  nlohmann::json j = {{"value", s.value}, {"source", s.source}};
  if (s.uncertain) j["uncertain"] = true;
  return j;
}

nlohmann::json read_json_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path, "file", "cannot open");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return parse_json_input<nlohmann::json>(text, path, "file");
}

std::string data_dir() {
  if (const char* env = std::getenv("RACKEP_DATA_DIR")) return env;
#ifdef RACKEP_SOURCE_DIR
  return RACKEP_SOURCE_DIR;
#else
  return ".";
#endif
}

std::vector<std::string> list_data_files(const std::string& kind) {
  std::vector<std::string> names;
  const fs::path dir = fs::path(data_dir()) / kind;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (entry.path().extension() == ".json") names.push_back(entry.path().stem().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::string resolve_data_file(const std::string& name_or_path, const std::string& kind,
                              const std::string& flag) {
  std::error_code ec;
  if (fs::is_regular_file(name_or_path, ec)) return name_or_path;
  const fs::path candidate = fs::path(data_dir()) / kind / (name_or_path + ".json");
  if (fs::is_regular_file(candidate, ec)) return candidate.string();
  std::string known;
  for (const auto& n : list_data_files(kind)) known += (known.empty() ? "" : ", ") + n;
  throw InputError(flag, name_or_path, "no such file or bundled name (bundled: " + known + ")");
}

JsonFields::JsonFields(const nlohmann::json& obj, std::string file, std::string prefix)
    : obj_(obj), file_(std::move(file)), prefix_(std::move(prefix)) {
  if (!obj_.is_object())
    throw InputError(file_, prefix_.empty() ? "(root)" : prefix_, "must be a JSON object");
}

void JsonFields::fail(const std::string& key, const std::string& message) const {
  throw InputError(file_, field(key), message);
}

bool JsonFields::has(const std::string& key) const {
  return obj_.contains(key);
}

const nlohmann::json& JsonFields::get(const std::string& key) {
  auto it = obj_.find(key);
  if (it == obj_.end()) fail(key, "missing");
  read_.insert(key);
  return *it;
}

const nlohmann::json& JsonFields::raw(const std::string& key) {
  return get(key);
}

Sourced JsonFields::sourced(const std::string& key) {
  const nlohmann::json& j = get(key);
  if (!j.is_object())
    fail(key, "must be an object {\"value\": <number>, \"source\": \"<where it comes from>\"}");
  JsonFields f(j, file_, field(key));
  Sourced s;
  const nlohmann::json& v = f.get("value");
  if (!v.is_number()) f.fail("value", "must be a number");
  s.value = v.get<double>();
  if (!std::isfinite(s.value)) f.fail("value", "must be finite");
  s.source = f.string("source");
  if (s.source.empty()) f.fail("source", "must name where the number comes from");
  if (f.has("uncertain")) s.uncertain = f.boolean("uncertain");
  f.finish();
  return s;
}

double JsonFields::number(const std::string& key, double min_value, double max_value) {
  const Sourced s = sourced(key);
  if (s.value < min_value || s.value > max_value) {
    fail(key, "value " + std::to_string(s.value) + " outside [" + std::to_string(min_value) + ", " +
                  std::to_string(max_value) + "]");
  }
  return s.value;
}

int JsonFields::integer(const std::string& key, int min_value, int max_value) {
  const double v = number(key, min_value, max_value);
  if (std::floor(v) != v) fail(key, "must be an integer, got " + std::to_string(v));
  return static_cast<int>(v);
}

std::string JsonFields::string(const std::string& key) {
  const nlohmann::json& j = get(key);
  if (!j.is_string()) fail(key, "must be a string");
  return j.get<std::string>();
}

bool JsonFields::boolean(const std::string& key) {
  const nlohmann::json& j = get(key);
  if (!j.is_boolean()) fail(key, "must be true or false");
  return j.get<bool>();
}

JsonFields JsonFields::object(const std::string& key) {
  return JsonFields(get(key), file_, field(key));
}

void JsonFields::finish() const {
  for (auto it = obj_.begin(); it != obj_.end(); ++it) {
    if (read_.count(it.key()) == 0 && it.key() != "comment")
      throw InputError(file_, field(it.key()), "unknown key");
  }
}

}  // namespace rackep::sim
