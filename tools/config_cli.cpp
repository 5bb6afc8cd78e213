#include "tools/config_cli.hpp"

namespace rackep::tools {

void add_config_options(CLI::App& cmd, config::Command command, ConfigCli& cli) {
  cmd.add_option("--config", cli.files,
                 "experiment config file(s) (JSON, keys as in the \"config\" echo of --json output); later "
                 "files, --set and flags override earlier ones");
  cmd.add_option("--set", cli.sets, "key=value: set one config key (e.g. eplb.window=2); repeatable");
  const config::ExperimentConfig defaults;
  for (const config::FieldSpec& f : config::fields()) {
    if ((f.commands & command) == 0 || f.flag.empty()) continue;
    std::string help = f.help + " [config key: " + f.key;
    const nlohmann::json d = f.get(defaults);
    if (!d.is_null() && !(d.is_string() && d.get<std::string>().empty()) && !(d.is_array() && d.empty()))
      help += ", default " + d.dump();
    help += "]";
    const std::string key = f.key;
    const std::string flag = f.flag;
    if (f.type == config::FieldType::kBool) {
      const std::string value = f.invert ? "false" : "true";
      cmd.add_flag_callback(
          flag,
          [&cli, key, flag, value] {
            cli.flags.push_back({key, flag, value});
          },
          help);
    } else {
      cmd.add_option_function<std::string>(
             flag,
             [&cli, key, flag](const std::string& text) {
               cli.flags.push_back({key, flag, text});
             },
             help)
          ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
    }
  }
}

config::ExperimentConfig resolve_config(const ConfigCli& cli, config::Command command) {
  config::ExperimentConfig c;
  for (const std::string& path : cli.files) config::load_config_file(path, c);
  for (const std::string& s : cli.sets) config::apply_set(c, s);
  for (const ConfigCli::Flag& f : cli.flags) config::set_field(c, f.key, f.text, f.flag);
  config::apply_command_defaults(c, command);
  return c;
}

}  // namespace rackep::tools
