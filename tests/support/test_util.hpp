#pragma once
// Shared test helpers: temporary directories, fixture files.
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>

namespace l04::test {

// A fresh directory under $TMPDIR, removed when the object dies.
class TempDir {
public:
    TempDir() {
        std::random_device rd;
        auto base = std::filesystem::temp_directory_path();
        for (;;) {
            m_path = base / ("l04-test-" + std::to_string(rd()));
            if (std::filesystem::create_directory(m_path)) break;
        }
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(m_path, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const std::filesystem::path& path() const { return m_path; }
    std::string str() const { return m_path.string(); }
    std::string file(const std::string& name) const { return (m_path / name).string(); }

private:
    std::filesystem::path m_path;
};

inline std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

inline void write_file(const std::string& path, const std::string& data) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << data;
}

// Path of a file under ../shared/fixtures (e.g. "wire/openai/chat_nonstream.json").
inline std::string fixture_path(const std::string& rel) { return std::string(L04_FIXTURES_DIR) + "/" + rel; }
inline std::string fixture(const std::string& rel) { return read_file(fixture_path(rel)); }

// The source tree's share/models.toml.
inline std::string models_toml_path() { return std::string(L04_SOURCE_DIR) + "/share/models.toml"; }

}  // namespace l04::test
