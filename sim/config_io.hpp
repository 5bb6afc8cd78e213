// File: sim/config_io.hpp
// Strict reading of the simulator's JSON data files (topologies/, configs/models/, configs/calibration/).
// Every number in these files carries its provenance: {"value": 900e9, "source": "[V] NVIDIA datasheet",
// "uncertain": false}. Unknown keys are errors; every error names the file and the dotted field.
// Usage:
//   nlohmann::json doc = rackep::sim::read_json_file(path);
//   rackep::sim::JsonFields f(doc, path, "");
//   rackep::sim::Sourced bw = f.sourced("port_bytes_per_s");
//   f.finish();   // throws on any key that was not read
#pragma once

#include <nlohmann/json.hpp>

#include <set>
#include <string>
#include <vector>

namespace rackep::sim {

/// A number with where it comes from. `uncertain` marks values the sources do not pin down ([?]).
struct Sourced {
  double value = 0.0;
  std::string source;
  bool uncertain = false;
};

nlohmann::json to_json(const Sourced& s);

/// Parses a JSON file; throws InputError(path, "file", ...) when it cannot be opened or parsed.
nlohmann::json read_json_file(const std::string& path);

/// Resolves `name_or_path`: an existing file path is returned as is; otherwise
/// `<data_dir>/<kind>/<name>.json` (kind = "topologies", "configs/models", ...). Throws InputError(flag,
/// name, ...) listing the available names.
std::string resolve_data_file(const std::string& name_or_path, const std::string& kind,
                              const std::string& flag);

/// Names (file stems) of the JSON files under `<data_dir>/<kind>`, sorted.
std::vector<std::string> list_data_files(const std::string& kind);

/// Root of the bundled data (topologies/, configs/, traces/data): $RACKEP_DATA_DIR when set, else the source
/// tree the binary was built from.
std::string data_dir();

/// Reader over one JSON object that remembers which keys were read.
class JsonFields {
 public:
  /// `prefix` is the dotted path of `obj` inside the file ("" for the root).
  JsonFields(const nlohmann::json& obj, std::string file, std::string prefix);

  bool has(const std::string& key) const;
  /// {"value", "source"[, "uncertain"]}; throws unless value is a finite number and source a non-empty
  /// string.
  Sourced sourced(const std::string& key);
  /// sourced(key).value, additionally checked to lie in [min_value, max_value].
  double number(const std::string& key, double min_value, double max_value);
  /// number() rounded, throws unless it is an integer.
  int integer(const std::string& key, int min_value, int max_value);
  std::string string(const std::string& key);
  bool boolean(const std::string& key);
  JsonFields object(const std::string& key);
  const nlohmann::json& raw(const std::string& key);
  /// Throws InputError(file, field, "unknown key") for the first key that was never read ("comment" keys,
  /// free text for humans, are always allowed).
  void finish() const;

  const std::string& file() const { return file_; }
  std::string field(const std::string& key) const { return prefix_.empty() ? key : prefix_ + "." + key; }
  [[noreturn]] void fail(const std::string& key, const std::string& message) const;

 private:
  const nlohmann::json& get(const std::string& key);
  const nlohmann::json& obj_;
  std::string file_;
  std::string prefix_;
  std::set<std::string> read_;
};

}  // namespace rackep::sim
