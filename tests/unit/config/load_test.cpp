// Loading good configurations: values, defaults, the example file, error
// collection and formatting, the reload check.
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "config/config.h"
#include "config/schema.h"
#include "tls_files.h"

using namespace isthmus::config;
using std::chrono::milliseconds;

namespace {

std::string source_dir() {
  const char* d = std::getenv("ISTHMUS_SOURCE_DIR");
  return d != nullptr ? d : ".";
}

std::string errors_of(const LoadResult& r) {
  std::string all;
  for (const ConfigError& e : r.errors) all += e.to_string() + "\n";
  return all;
}

const char* kFull = R"(
[region]
name = "ams"
priority = 20

[nats]
urls = ["nats://10.0.0.1:4222", "tls://u:p@nats.example:4443"]
replicas = 3
request_timeout = "1.5s"
reconnect_wait = "1s500ms"
pending_bytes_limit = 1048576

[link]
listen = "[::]:7422"
max_frame_bytes = "1MiB"
batch_bytes = "100KB"
window_messages = 1000
window_bytes = "1GiB"
heartbeat_interval = "500ms"
stale_after = "3s"
handshake_timeout = "1m"
backoff_min = "50ms"
backoff_max = "1m30s"

[[peers]]
name = "iad"
address = "iad.example.net:7422"

[[peers]]
name = "syd"
address = "[2001:db8::1]:7422"

[http]
listen = "0.0.0.0:8080"

[[streams]]
name = "COVENANT_COUNTRIES"
leader = "iad"

[[streams]]
name = "ALERTS_INCIDENTS"
leader = "ams"

[log]
level = "debug"
format = "json"
)";

}  // namespace

TEST_CASE("a full configuration loads every key", "[config][load]") {
  TlsFiles tls;
  LoadResult r = load_string(kFull + tls.table(), "full.toml");
  INFO(errors_of(r));
  REQUIRE(r.ok());
  const Config& c = r.config;
  CHECK(c.path == "full.toml");
  CHECK(c.region.name == "ams");
  CHECK(c.region.priority == 20);
  CHECK(c.nats.urls == std::vector<std::string>{"nats://10.0.0.1:4222", "tls://u:p@nats.example:4443"});
  CHECK(c.nats.credentials.empty());
  CHECK(c.nats.replicas == 3);
  CHECK(c.nats.request_timeout == milliseconds(1500));
  CHECK(c.nats.reconnect_wait == milliseconds(1500));
  CHECK(c.nats.pending_bytes_limit == 1048576);
  CHECK(c.link.listen.host == "::");
  CHECK(c.link.listen.port == 7422);
  CHECK(c.link.listen.to_string() == "[::]:7422");
  CHECK(c.link.max_frame_bytes == 1024 * 1024);
  CHECK(c.link.batch_bytes == 100000);
  CHECK(c.link.window_messages == 1000);
  CHECK(c.link.window_bytes == 1ull << 30);
  CHECK(c.link.heartbeat_interval == milliseconds(500));
  CHECK(c.link.stale_after == milliseconds(3000));
  CHECK(c.link.handshake_timeout == milliseconds(60000));
  CHECK(c.link.backoff_min == milliseconds(50));
  CHECK(c.link.backoff_max == milliseconds(90000));
  REQUIRE(c.peers.size() == 2);
  CHECK(c.peers[0].name == "iad");
  CHECK(c.peers[0].address.to_string() == "iad.example.net:7422");
  CHECK(c.peers[1].address.host == "2001:db8::1");
  CHECK(c.peers[1].address.to_string() == "[2001:db8::1]:7422");
  CHECK(c.http.listen.to_string() == "0.0.0.0:8080");
  REQUIRE(c.streams.size() == 2);
  CHECK(c.streams[0].name == "COVENANT_COUNTRIES");
  CHECK(c.streams[0].leader == "iad");
  CHECK(c.streams[1].leader == "ams");
  CHECK(c.log.level == "debug");
  CHECK(c.log.format == "json");

  REQUIRE(c.find_peer("syd") != nullptr);
  CHECK(c.find_peer("syd")->address.port == 7422);
  CHECK(c.find_peer("ams") == nullptr);  // ourselves
  CHECK(c.find_peer("nope") == nullptr);
}

TEST_CASE("a minimal configuration gets every default", "[config][load]") {
  LoadResult r = load_string("[region]\nname = \"iad\"\n", "min.toml");
  INFO(errors_of(r));
  REQUIRE(r.ok());
  const Config& c = r.config;
  CHECK(c.region.priority == 100);
  CHECK(c.nats.urls == std::vector<std::string>{"nats://127.0.0.1:4222"});
  CHECK(c.nats.credentials.empty());
  CHECK(c.nats.replicas == 1);
  CHECK(c.nats.request_timeout == milliseconds(2000));
  CHECK(c.nats.reconnect_wait == milliseconds(250));
  CHECK(c.nats.pending_bytes_limit == 8 * 1024 * 1024);
  CHECK(c.link.listen.to_string() == "127.0.0.1:7422");
  CHECK(c.link.max_frame_bytes == 8 * 1024 * 1024);
  CHECK(c.link.batch_bytes == 64 * 1024);
  CHECK(c.link.window_messages == 50000);
  CHECK(c.link.window_bytes == 8 * 1024 * 1024);
  CHECK(c.link.heartbeat_interval == milliseconds(1000));
  CHECK(c.link.stale_after == milliseconds(10000));
  CHECK(c.link.handshake_timeout == milliseconds(5000));
  CHECK(c.link.backoff_min == milliseconds(100));
  CHECK(c.link.backoff_max == milliseconds(5000));
  CHECK(c.peers.empty());
  CHECK(c.http.listen.to_string() == "127.0.0.1:7480");
  CHECK(c.streams.empty());
  CHECK(c.log.level == "info");
  CHECK(c.log.format == "text");
}

TEST_CASE("inline tables and dotted keys are accepted", "[config][load]") {
  TlsFiles tls;
  LoadResult r = load_string(R"(region = { name = "iad", priority = 7 }
link.listen = "127.0.0.1:9000"
peers = [{ name = "ams", address = "127.0.0.1:9001" }]
streams = [{ name = "S", leader = "ams" }]
link.tls = )" + tls.inline_table() + "\n",
                             "inline.toml");
  INFO(errors_of(r));
  REQUIRE(r.ok());
  CHECK(r.config.region.priority == 7);
  CHECK(r.config.link.listen.port == 9000);
  CHECK(r.config.peers.at(0).name == "ams");
  CHECK(r.config.streams.at(0).leader == "ams");
}

// The example is the package's initial /etc/isthmus/isthmus.toml: a template
// that lists a peer, so it is refused until the operator names the link's
// TLS files, each error at its own line; filled in, it loads cleanly.
TEST_CASE("the example file asks for the TLS files, then loads cleanly, lists every key, and shows the defaults",
          "[config][example]") {
  const std::string path = source_dir() + "/config/isthmus.example.toml";
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  REQUIRE_FALSE(text.empty());

  LoadResult as_shipped = load_file(path);
  REQUIRE(as_shipped.errors.size() == 3);
  int i = 0;
  for (const char* key : {"ca", "cert", "key"}) {
    const ConfigError& e = as_shipped.errors[i++];
    INFO(e.to_string());
    CHECK(e.key == std::string("link.tls.") + key);
    CHECK_THAT(e.message, Catch::Contains("required when [[peers]] are configured"));
    // The line of `key = ""` in the file.
    const size_t at = text.find("\n" + std::string(key) + " = \"\"\n");
    REQUIRE(at != std::string::npos);
    CHECK(e.line == 2 + static_cast<int>(std::count(text.begin(), text.begin() + static_cast<long>(at), '\n')));
  }

  TlsFiles tls;
  std::string filled = text;
  for (const char* key : {"ca", "cert", "key"}) {
    const std::string empty = "\n" + std::string(key) + " = \"\"\n";
    filled.replace(filled.find(empty), empty.size(), "\n" + std::string(key) + " = \"" + tls.path(key) + "\"\n");
  }
  LoadResult example = load_string(filled, path);
  INFO(errors_of(example));
  REQUIRE(example.ok());
  CHECK(example.config.region.name == "iad");
  REQUIRE(example.config.peers.size() == 1);
  REQUIRE(example.config.streams.size() == 1);

  // Every key of the schema appears in the example file, written as itself.
  for (const Key& k : keys()) {
    INFO(k.section << "." << k.name);
    CHECK(text.find("\n" + std::string(k.name) + " = ") != std::string::npos);
    if (!k.default_toml.empty()) {
      CHECK(text.find("\n" + std::string(k.name) + " = " + std::string(k.default_toml) + "\n") !=
            std::string::npos);
    }
  }
  for (const Section& s : sections()) {
    INFO(s.name);
    const std::string header = s.array ? "[[" + std::string(s.name) + "]]" : "[" + std::string(s.name) + "]";
    CHECK(text.find("\n" + header + "\n") != std::string::npos);
  }
}

TEST_CASE("docs/configuration.md documents every key with its default", "[config][docs]") {
  std::ifstream in(source_dir() + "/docs/configuration.md");
  REQUIRE(in.good());
  std::string line;
  std::vector<std::string> rows;
  while (std::getline(in, line)) {
    if (line.rfind("| `", 0) == 0) rows.push_back(line);
  }
  for (const Key& k : keys()) {
    const Section* s = find_section(k.section);
    REQUIRE(s != nullptr);
    const std::string dotted = std::string(k.section) + (s->array ? "[]." : ".") + std::string(k.name);
    INFO(dotted);
    const std::string* row = nullptr;
    for (const std::string& r : rows) {
      if (r.rfind("| `" + dotted + "` ", 0) == 0) row = &r;
    }
    REQUIRE(row != nullptr);
    CHECK(row->find(k.default_toml.empty() ? "required" : "`" + std::string(k.default_toml) + "`") !=
          std::string::npos);
    const char* col = k.reload == Reload::kLive ? "| yes |" : k.reload == Reload::kAddRemove ? "| add, remove |" : "| no |";
    CHECK(row->find(col) != std::string::npos);
  }
}

TEST_CASE("the schema's defaults are the struct defaults in config.h", "[config][schema]") {
  LoadResult r = load_string("[region]\nname = \"iad\"\n", "min.toml");
  REQUIRE(r.ok());
  Config loaded = r.config;
  Config plain;
  auto render = [](FieldRef f) {
    return std::visit(
        [](auto* p) -> std::string {
          using T = std::remove_pointer_t<decltype(p)>;
          if constexpr (std::is_same_v<T, std::string>) return *p;
          else if constexpr (std::is_same_v<T, Millis>) return std::to_string(p->count()) + "ms";
          else if constexpr (std::is_same_v<T, HostPort>) return p->to_string();
          else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
            std::string s;
            for (auto& x : *p) s += x + ",";
            return s;
          } else return std::to_string(*p);
        },
        f);
  };
  for (const Key& k : keys()) {
    const Section* s = find_section(k.section);
    if (s->array || k.required) continue;
    INFO(k.section << "." << k.name);
    CHECK_FALSE(k.default_toml.empty());
    CHECK(render(k.field(loaded, 0)) == render(k.field(plain, 0)));
  }
}

TEST_CASE("the schema table is well formed", "[config][schema]") {
  for (const Key& k : keys()) {
    INFO(k.section << "." << k.name);
    REQUIRE(find_section(k.section) != nullptr);
    CHECK(find_key(k.section, k.name) == &k);  // no duplicates
    CHECK(k.field != nullptr);
    CHECK_FALSE(k.doc.empty());
    CHECK(k.required == k.default_toml.empty());
    CHECK(k.min <= k.max);
    if (k.kind == Kind::kInt || k.kind == Kind::kSize || k.kind == Kind::kDuration) CHECK(k.max > 0);
    if (k.kind == Kind::kEnum) CHECK_FALSE(k.choices.empty());
  }
  for (const Section& s : sections()) {
    INFO(s.name);
    bool any = false;
    for (const Key& k : keys()) any = any || k.section == s.name;
    CHECK(any);
  }
  CHECK(kind_name(*find_key("log", "level")) == "string (trace|debug|info|warn|warning|error)");
  CHECK(kind_name(*find_key("link", "batch_bytes")) == "size");
}

TEST_CASE("errors are all collected, in file order", "[config][errors]") {
  LoadResult r = load_string(R"([region]
name = "IAD"
priority = 0
bogus = 1
[link]
max_frame_bytes = "1KiB"
heartbeat_interval = 5
[[peers]]
address = "nowhere"
[[streams]]
name = "A.B"
leader = "mars"
[log]
level = "loud"
)", "multi.toml");
  const std::vector<std::string> want = {
      "multi.toml:2:8: region.name: invalid name \"IAD\": use lower-case letters, digits, '-' and '_', "
      "starting with a letter or digit",
      "multi.toml:3:12: region.priority: must be between 1 and 1000, got 0",
      "multi.toml:4:1: region.bogus: unknown key",
      "multi.toml:6:19: link.max_frame_bytes: must be between 4KiB and 64MiB, got 1KiB",
      "multi.toml:7:22: link.heartbeat_interval: expected a duration string like \"2s\", got integer",
      "multi.toml:8:1: peers[0].name: required key is missing",
      "multi.toml:8:1: link.tls.ca: required when [[peers]] are configured (links are always mutual TLS)",
      "multi.toml:8:1: link.tls.cert: required when [[peers]] are configured (links are always mutual TLS)",
      "multi.toml:8:1: link.tls.key: required when [[peers]] are configured (links are always mutual TLS)",
      "multi.toml:9:11: peers[0].address: invalid address \"nowhere\": missing port (expected \"host:port\")",
      "multi.toml:11:8: streams[0].name: invalid stream name \"A.B\": must not contain '.'",
      "multi.toml:14:9: log.level: must be one of trace,debug,info,warn,warning,error; got \"loud\"",
  };
  std::vector<std::string> got;
  for (const ConfigError& e : r.errors) got.push_back(e.to_string());
  CHECK(got == want);
}

TEST_CASE("a config with no [region] reports line 0 first", "[config][errors]") {
  LoadResult r = load_string("[log]\nlevel = \"nope\"\n", "x.toml");
  REQUIRE(r.errors.size() == 2);
  CHECK(r.errors[0].to_string() ==
        "x.toml:0:0: region.name: required key is missing (there is no [region] table)");
  CHECK(r.errors[1].key == "log.level");
}

TEST_CASE("ConfigError formats as FILE:LINE:COL: KEY: MESSAGE", "[config][errors]") {
  ConfigError e{"/etc/isthmus/isthmus.toml", 12, 5, "peers[1].address", "missing port"};
  CHECK(e.to_string() == "/etc/isthmus/isthmus.toml:12:5: peers[1].address: missing port");
  ConfigError syntax{"a.toml", 3, 7, "", "Error while parsing"};
  CHECK(syntax.to_string() == "a.toml:3:7: Error while parsing");
}

TEST_CASE("syntax errors carry toml++'s position and nothing else", "[config][errors]") {
  LoadResult r = load_string("[region]\nname = \"iad\"\npriority = = 3\n", "s.toml");
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].line == 3);
  CHECK(r.errors[0].column > 0);
  CHECK(r.errors[0].key.empty());
}

TEST_CASE("load_file reports an unreadable file", "[config][errors]") {
  LoadResult r = load_file("/nonexistent/isthmus.toml");
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].to_string() == "/nonexistent/isthmus.toml:0:0: cannot open: No such file or directory");
}

TEST_CASE("credentials are resolved against the config file's directory", "[config][load]") {
  char dir[] = "/tmp/isthmus-config-test-XXXXXX";
  REQUIRE(mkdtemp(dir) != nullptr);
  const std::string d = dir;
  std::ofstream(d + "/region.creds") << "-----BEGIN NATS USER JWT-----\n";
  std::ofstream(d + "/isthmus.toml") << "[region]\nname = \"iad\"\n[nats]\ncredentials = \"region.creds\"\n";
  LoadResult r = load_file(d + "/isthmus.toml");
  INFO(errors_of(r));
  REQUIRE(r.ok());
  CHECK(r.config.nats.credentials == d + "/region.creds");

  std::ofstream(d + "/abs.toml") << "[region]\nname = \"iad\"\n[nats]\ncredentials = \"" << d
                                 << "/region.creds\"\n";
  LoadResult a = load_file(d + "/abs.toml");
  REQUIRE(a.ok());
  CHECK(a.config.nats.credentials == d + "/region.creds");

  std::ofstream(d + "/missing.toml") << "[region]\nname = \"iad\"\n[nats]\ncredentials = \"other.creds\"\n";
  LoadResult m = load_file(d + "/missing.toml");
  REQUIRE(m.errors.size() == 1);
  CHECK(m.errors[0].key == "nats.credentials");
  CHECK(m.errors[0].line == 4);
  CHECK_THAT(m.errors[0].message, Catch::Contains(d + "/other.creds"));

  for (const char* f : {"/region.creds", "/isthmus.toml", "/abs.toml", "/missing.toml"}) {
    ::unlink((d + f).c_str());
  }
  ::rmdir(dir);
}

TEST_CASE("reload_blockers names what cannot change without a restart", "[config][reload]") {
  TlsFiles tls;
  LoadResult base = load_string(kFull + tls.table(), "full.toml");
  REQUIRE(base.ok());
  const Config& a = base.config;

  CHECK(reload_blockers(a, a).empty());

  Config b = a;
  b.log.level = "trace";
  b.link.batch_bytes = 4096;
  b.nats.request_timeout = milliseconds(3000);
  b.peers[0].address.port = 7000;
  b.streams.push_back(Stream{"NEW", "iad"});
  CHECK(reload_blockers(a, b).empty());

  // Streams and peers may be added and removed; a peer's pin or
  // compression not changed. A stream removed and another added under the
  // same name with another leader is a change of its leader.
  Config d = a;
  d.streams.pop_back();
  d.peers.push_back(Peer{"per", HostPort{"127.0.0.1", 9999}});
  d.peers.back().pin_sha256 = std::string(64, 'a');  // (an added peer's settings are its own)
  CHECK(reload_blockers(a, d).empty());
  auto has = [](const std::vector<std::string>& v, const std::string& k) {
    return std::find(v.begin(), v.end(), k) != v.end();
  };
  const std::string added = "peers[" + std::to_string(a.peers.size()) + "].name per added";
  CHECK(has(changed_keys(a, d), added));
  d.peers.erase(d.peers.begin());
  CHECK(reload_blockers(a, d).empty());
  CHECK(has(changed_keys(a, d), "peers[" + std::to_string(a.peers.size() - 1) + "].name per added"));
  CHECK(has(changed_keys(a, d), "peers[0].name " + a.peers[0].name + " removed"));
  Config g = a;
  g.peers[0].compression = "none";
  g.peers[0].pin_sha256 = std::string(64, 'b');
  CHECK(reload_blockers(a, g) == std::vector<std::string>{"peers[0].pin_sha256", "peers[0].compression"});
  Config e = a;
  e.streams.erase(e.streams.begin());
  CHECK(reload_blockers(a, e).empty());
  CHECK(changed_keys(a, e) == std::vector<std::string>{"streams[0].name " + a.streams[0].name + " removed"});
  e.streams.push_back(Stream{a.streams[0].name, a.streams[0].leader == "iad" ? "ams" : "iad"});
  // The same name with another leader: a switchover, reloadable.
  CHECK(reload_blockers(a, e).empty());
  CHECK(has(changed_keys(a, e), "streams[" + std::to_string(a.streams.size() - 1) + "].leader"));

  Config c = a;
  c.link.listen.port = 1;
  c.region.priority = 1;
  c.streams[1].leader = "iad";
  c.nats.urls = {"nats://other:4222"};
  CHECK(reload_blockers(a, c) == std::vector<std::string>{"region.priority", "nats.urls", "link.listen"});
  CHECK(has(changed_keys(a, c), "streams[1].leader"));
}
