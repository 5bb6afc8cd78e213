// File: tools/config_cli.hpp
// Binds the experiment config (config/experiment.hpp) to a CLI11 command: `--config file.json` (repeatable),
// `--set key=value` (repeatable) and one flag per config field, spelled the same in every command. Values are
// checked by the config (type, range, choices), so a flag, a --set and a config file fail the same way.
// Usage:
//   auto cli = std::make_shared<ConfigCli>();
//   add_config_options(*cmd, config::kSimulate, *cli);
//   cmd->callback([cli] { config::ExperimentConfig c = resolve_config(*cli, config::kSimulate); ... });
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <utility>
#include <vector>

#include "config/experiment.hpp"

namespace rackep::tools {

struct ConfigCli {
  std::vector<std::string> files;
  std::vector<std::string> sets;
  struct Flag {
    std::string key, flag, text;
  };
  std::vector<Flag> flags;  ///< in command-line order
};

/// Registers --config, --set and every field flag that `command` reads.
void add_config_options(CLI::App& cmd, config::Command command, ConfigCli& cli);

/// defaults < --config files < --set < flags, then config::apply_command_defaults.
config::ExperimentConfig resolve_config(const ConfigCli& cli, config::Command command);

}  // namespace rackep::tools
