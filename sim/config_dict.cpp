#include "sim/config_dict.hpp"

#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "core/error.hpp"

namespace rackep::sim {

SimConfig sim_config_from_json(const nlohmann::json& j, const std::string& source) {
  if (!j.is_object()) throw InputError(source, "config", "expected an object of SimConfig fields");
  SimConfig c;
  using Setter = std::function<void(const nlohmann::json&)>;
  auto str = [](std::string& field) {
    return Setter([&field](const nlohmann::json& v) { field = v.get<std::string>(); });
  };
  auto num = [](auto& field) {
    return Setter([&field](const nlohmann::json& v) {
      if (!v.is_number()) throw std::invalid_argument("expected a number, got " + v.dump());
      field = v.get<std::remove_reference_t<decltype(field)>>();
    });
  };
  auto flag = [](bool& field) {
    return Setter([&field](const nlohmann::json& v) { field = v.get<bool>(); });
  };
  const std::map<std::string, Setter> setters = {
      {"model", str(c.model)},
      {"topology", str(c.topology)},
      {"trace", str(c.trace)},
      {"calibration", str(c.calibration)},
      {"balancers",
       [&c](const nlohmann::json& v) {
         c.balancers.clear();
         if (v.is_string()) {  // "none,ultraep" as on the command line
           std::string s = v.get<std::string>(), item;
           for (char ch : s + ",")
             if (ch == ',') {
               if (!item.empty()) c.balancers.push_back(item);
               item.clear();
             } else {
               item += ch;
             }
         } else {
           c.balancers = v.get<std::vector<std::string>>();
         }
       }},
      {"mode", [&c](const nlohmann::json& v) { c.mode = parse_mode(v.get<std::string>()); }},
      {"fidelity", [&c](const nlohmann::json& v) { c.fidelity = parse_fidelity(v.get<std::string>()); }},
      {"precision", [&c](const nlohmann::json& v) { c.precision = parse_precision(v.get<std::string>()); }},
      {"backward_comm_precision", str(c.backward_comm_precision)},
      {"schedule", str(c.schedule)},
      {"pp", num(c.pp)},
      {"ranks", num(c.ranks)},
      {"slots", num(c.slots)},
      {"domain", num(c.domain)},
      {"tokens_per_rank", num(c.tokens_per_rank)},
      {"microbatches", num(c.microbatches)},
      {"imbalance", num(c.imbalance)},
      {"seed", num(c.seed)},
      {"seq_len", num(c.seq_len)},
      {"recompute", flag(c.recompute)},
      {"dedup", flag(c.dedup)},
      {"measure_host_planner", flag(c.measure_host_planner)},
      {"weight_sync_mode", str(c.weight_sync_mode)},
      {"ptask_compress", flag(c.ptask_compress)},
  };
  for (const auto& [key, value] : j.items()) {
    const auto it = setters.find(key);
    if (it == setters.end()) {
      std::string known;
      for (const auto& kv : setters) known += (known.empty() ? "" : ", ") + kv.first;
      throw InputError(source, key, "unknown key (known: " + known + ")");
    }
    try {
      it->second(value);
    } catch (const InputError&) {
      throw;
    } catch (const std::exception& e) {
      throw InputError(source, key, std::string("wrong value: ") + e.what());
    }
  }
  return c;
}

}  // namespace rackep::sim
