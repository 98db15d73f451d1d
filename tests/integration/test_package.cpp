// `cpack -G DEB` builds a package that works where it is unpacked: the
// binaries, the model catalogue, man pages, completions and the systemd user
// units, with the runtime libraries as dependencies.
#include "support/daemon_env.hpp"

#include <doctest/doctest.h>

#include <filesystem>

using l04::test::DaemonEnv;

TEST_CASE("cpack builds a .deb that runs from a dpkg -x root") {
    const std::string build = std::filesystem::path(L04_BIN_DIR).parent_path().string();
    if (!std::filesystem::exists("/usr/bin/cpack") || !std::filesystem::exists("/usr/bin/dpkg-deb")) {
        MESSAGE("skipped: cpack or dpkg-deb is not installed");
        return;
    }
    DaemonEnv env;
    const std::string out = env.dir().file("pkg");
    l04::test::ProcOptions po;
    po.timeout = std::chrono::seconds(120);
    auto pack = l04::test::run({"/usr/bin/cpack", "-G", "DEB", "-B", out, "--config", build + "/CPackConfig.cmake"}, po);
    INFO(pack.out << pack.err);
    REQUIRE(pack.exit_code == 0);
    std::string deb;
    for (const auto& e : std::filesystem::directory_iterator(out))
        if (e.path().extension() == ".deb") deb = e.path().string();
    REQUIRE(!deb.empty());

    auto depends = l04::test::run({"/usr/bin/dpkg-deb", "-f", deb, "Depends"});
    CHECK(depends.out.find("libsqlite3-0") != std::string::npos);
    CHECK(depends.out.find("libcurl4") != std::string::npos);
    CHECK(depends.out.find("libspdlog") != std::string::npos);

    const std::string root = env.dir().file("root");
    REQUIRE(l04::test::run({"/usr/bin/dpkg-deb", "-x", deb, root}).exit_code == 0);
    // The install prefix of this build (/usr/local unless configured otherwise).
    std::string prefix;
    for (const char* p : {"/usr/local", "/usr"})
        if (std::filesystem::exists(root + p + "/bin/l04ctl")) {
            prefix = root + p;
            break;
        }
    REQUIRE(!prefix.empty());
    for (const char* f : {"/bin/l04d", "/share/l04/models.toml", "/share/man/man1/l04ctl.1", "/share/man/man8/l04d.8",
                          "/share/man/man5/l04.toml.5", "/share/bash-completion/completions/l04ctl",
                          "/share/zsh/vendor-completions/_l04ctl", "/share/fish/vendor_completions.d/l04ctl.fish",
                          "/lib/systemd/user/l04d.service", "/lib/systemd/user/l04d.socket"}) {
        INFO(f);
        CHECK(std::filesystem::exists(prefix + f));
    }
    const std::string unit = l04::test::read_file(prefix + "/lib/systemd/user/l04d.service");
    CHECK(unit.find("ExecStart=" + prefix.substr(root.size()) + "/bin/l04d") != std::string::npos);
    CHECK(l04::test::read_file(prefix + "/lib/systemd/user/l04d.socket").find("ListenStream=%t/l04/l04d.sock") !=
          std::string::npos);

    auto version = l04::test::run({prefix + "/bin/l04ctl", "--version"});
    CHECK(version.exit_code == 0);
    CHECK(version.out.find("l04ctl " L04_VERSION) != std::string::npos);
    // The unpacked l04ctl finds the catalogue next to itself.
    auto o = env.options();
    o.env.erase("L04_SHARE_DIR");
    o.unset_env.push_back("L04_SHARE_DIR");
    auto models = l04::test::run({prefix + "/bin/l04ctl", "--no-daemon", "models", "show", "mock"}, o);
    INFO(models.err);
    CHECK(models.exit_code == 0);
    auto prompt = l04::test::run({prefix + "/bin/l04ctl", "--no-daemon", "prompt", "-m", "mock", "from the package"}, o);
    CHECK(prompt.exit_code == 0);
    CHECK(prompt.out.find("from the package") != std::string::npos);
}
