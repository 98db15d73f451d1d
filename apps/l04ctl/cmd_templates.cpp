// l04ctl templates list|show|edit: saved prompt templates
// ($XDG_CONFIG_HOME/l04/templates/NAME.toml), used with `prompt -t NAME`.
#include "common.hpp"

#include <l04/config/prompt_template.hpp>
#include <l04/store/db.hpp>

#include <CLI/CLI.hpp>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

namespace l04ctl {

namespace {

const char* k_skeleton = R"(# A prompt template for `l04ctl prompt -t NAME` (see `l04ctl templates --help`).
description = "What this template is for"
# system = "You are a careful technical editor."
prompt = "Summarise the following in {words} words:\n\n{input}"
# model = "gpt-4o-mini"
# temperature = 0.2
# max_tokens = 400
# schema = "title str, points [str]"

[defaults]
words = "50"

# [options]
# top_k = 40
)";

}  // namespace

void add_templates(CLI::App& app, Context& ctx) {
    auto* c = app.add_subcommand("templates", "Saved prompt templates (used with `l04ctl prompt -t NAME`)");
    c->footer("A template is $XDG_CONFIG_HOME/l04/templates/NAME.toml with description, system, prompt, model,\n"
              "temperature, max_tokens, schema, [options] and [defaults]. In system and prompt, {input} is the\n"
              "prompt text (arguments and stdin; appended when the template does not place it) and {name} a\n"
              "parameter set with -p name VALUE or [defaults]; {{ and }} are literal braces.");
    c->require_subcommand(1);
    c->add_subcommand("list", "List templates with their descriptions")->callback([&ctx] {
        if ((g_exit = ctx.load())) return;
        std::vector<std::vector<std::string>> rows;
        for (const auto& name : l04::template_names(ctx.settings.config_dir())) {
            auto t = l04::load_template(ctx.settings.config_dir(), name);
            std::string params;
            if (t)
                for (const auto& p : l04::template_params(t->system + "\n" + t->prompt))
                    params += (params.empty() ? "" : " ") + p;
            rows.push_back({name, t ? t->description : "(invalid: " + t.error().message + ")", params});
        }
        if (rows.empty()) {
            std::fprintf(stderr, "l04ctl: no templates in %s (`l04ctl templates edit NAME` creates one)\n",
                         l04::templates_dir(ctx.settings.config_dir()).c_str());
            return;
        }
        print_table({"NAME", "DESCRIPTION", "PARAMETERS"}, rows);
    });
    auto name = std::make_shared<std::string>();
    auto* show = c->add_subcommand("show", "Print a template");
    show->add_option("name", *name, "Template name")->required();
    show->callback([&ctx, name] {
        if ((g_exit = ctx.load())) return;
        auto t = l04::load_template(ctx.settings.config_dir(), *name);
        if (!t) {
            g_exit = report(t.error());
            return;
        }
        std::string text;
        if (std::FILE* f = std::fopen(t->path.c_str(), "rb")) {
            char buf[4096];
            std::size_t n;
            while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
            std::fclose(f);
        }
        std::printf("# %s\n%s", t->path.c_str(), text.c_str());
    });
    auto* edit = c->add_subcommand("edit", "Edit a template in $VISUAL or $EDITOR (a commented one is created if missing)");
    edit->add_option("name", *name, "Template name")->required();
    edit->callback([&ctx, name] {
        if ((g_exit = ctx.load())) return;
        if (!l04::valid_template_name(*name)) {
            g_exit = report(l04::Error(l04::ErrorCode::invalid_parameter,
                                       "'" + *name + "' is not a template name (letters, digits, - _ .)"));
            return;
        }
        const std::string dir = l04::templates_dir(ctx.settings.config_dir());
        if (auto st = l04::ensure_dir(dir, 0700); !st) {
            g_exit = report(st.error());
            return;
        }
        const std::string path = dir + "/" + *name + ".toml";
        if (int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600); fd >= 0) {
            const std::size_t len = std::strlen(k_skeleton);
            const bool ok = ::write(fd, k_skeleton, len) == static_cast<ssize_t>(len);
            ::close(fd);
            if (!ok) {
                g_exit = report(l04::Error(l04::ErrorCode::config_error, "cannot write " + path));
                return;
            }
        }
        const char* ed = std::getenv("VISUAL");
        if (!ed || !*ed) ed = std::getenv("EDITOR");
        if (!ed || !*ed) ed = "vi";
        // The editor may take arguments ("code -w"): run it through the shell,
        // the path passed as an argument, never pasted into the command.
        const pid_t pid = ::fork();
        if (pid == 0) {
            const std::string cmd = std::string(ed) + " \"$1\"";
            ::execl("/bin/sh", "sh", "-c", cmd.c_str(), "sh", path.c_str(), static_cast<char*>(nullptr));
            ::_exit(127);
        }
        int status = 0;
        while (pid > 0 && ::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
        if (pid < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            g_exit = report(l04::Error(l04::ErrorCode::internal_error, std::string("the editor '") + ed + "' failed"));
            return;
        }
        auto t = l04::load_template(ctx.settings.config_dir(), *name);
        if (!t) {
            g_exit = report(t.error());
            return;
        }
        std::printf("%s\n", path.c_str());
    });
}

}  // namespace l04ctl
