#pragma once
// Saved prompt templates: $XDG_CONFIG_HOME/l04/templates/NAME.toml, used by
// `l04ctl prompt -t NAME`. Keys (all optional but one of system/prompt):
//   description = "one line for `templates list`"
//   system      = "You are ..."
//   prompt      = "Summarise {input} in {words} words"
//   model       = "gpt-4o-mini"
//   temperature = 0.2
//   max_tokens  = 300
//   schema      = "title str, points [str]"   (or JSON text, or a table)
//   [options]   provider options, as -o
//   [defaults]  parameter values used when -p does not give one
// {input} is the prompt text (arguments and stdin); {name} a parameter given
// with -p name VALUE; {{ and }} are literal braces. Anything else in braces
// ({"a": 1}) is left as it is.
#include <l04/core/error.hpp>
#include <l04/core/types.hpp>

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace l04 {

struct PromptTemplate {
    std::string name;
    std::string path;
    std::string description;
    std::string system;
    std::string prompt;
    std::string model;
    std::optional<double> temperature;
    std::optional<std::int64_t> max_tokens;
    std::string schema;  // as --schema takes it
    std::map<std::string, OptionValue> options;
    std::map<std::string, std::string> defaults;
};

// Names are letters, digits, '-', '_' and '.', not starting with '.': never a path.
bool valid_template_name(const std::string& name);
std::string templates_dir(const std::string& config_dir);
Result<PromptTemplate> load_template(const std::string& config_dir, const std::string& name);
// Sorted names of the templates in the directory.
std::vector<std::string> template_names(const std::string& config_dir);
// The {name} parameters of text, in order of first use (input included).
std::vector<std::string> template_params(const std::string& text);
// Fills text. Every parameter must have a value (params, then defaults;
// "input" is the input); unknown params are refused (E4502). used_input
// tells whether {input} occurred.
Result<std::string> fill_template(const std::string& text, const std::map<std::string, std::string>& values,
                                  bool& used_input);

}  // namespace l04
