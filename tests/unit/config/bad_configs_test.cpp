// A table of bad configurations, each with the one error it must produce:
// line, column, dotted key and a fragment of the message (nats-server's
// config_check_test.go in spirit). Every validation rule has a row.
#include <catch2/catch.hpp>

#include "config/config.h"
#include "tls_files.h"

using namespace isthmus::config;

namespace {

struct BadConfig {
  const char* name;
  const char* toml;
  int line;
  int column;
  const char* key;
  const char* message;  // a fragment of the message
};

// Line 1 is the line right after R"(.
const BadConfig kBad[] = {
    // --- TOML syntax: toml++'s own position, no key.
    {"unterminated string", R"([region]
name = "iad
)", 2, 12, "", "Error while parsing string"},
    {"redefined key", R"([region]
name = "iad"
name = "ams"
)", 3, 8, "", "cannot redefine existing string 'name'"},

    // --- structure
    {"no [region] table", R"([log]
level = "info"
)", 0, 0, "region.name", "required key is missing (there is no [region] table)"},
    {"region is not a table", R"(region = "iad"
)", 1, 10, "region", "expected a table, got string"},
    {"unknown top-level key", R"([region]
name = "iad"
[log]
level = "info"
[http]
listen = "127.0.0.1:7480"
colour = "blue"
)", 7, 1, "http.colour", "unknown key"},
    {"unknown root key", R"(colour = "blue"
[region]
name = "iad"
)", 1, 1, "colour", "unknown key"},
    {"unknown table", R"([region]
name = "iad"
[tls]
cert = "x"
)", 3, 2, "tls", "unknown table [tls]"},
    {"unknown table with suggestion", R"([region]
name = "iad"
[[peer]]
name = "ams"
)", 3, 3, "peer", "unknown table [[peer]] (did you mean \"peers\"?)"},
    {"unknown key with suggestion", R"([region]
name = "iad"
[nats]
url = ["nats://127.0.0.1:4222"]
)", 4, 1, "nats.url", "unknown key (did you mean \"urls\"?)"},
    {"unknown sub-table", R"([region]
name = "iad"
[link.bogus]
cert = "x"
)", 3, 7, "link.bogus", "unknown table [link.bogus]"},
    {"unknown key in [link.tls]", R"([region]
name = "iad"
[link.tls]
certificate = "x"
)", 4, 1, "link.tls.certificate", "unknown key"},
    {"link.tls.ca is not a file", R"([region]
name = "iad"
[link.tls]
ca = "no-such-ca.pem"
)", 4, 6, "link.tls.ca", "cannot use"},
    {"[link.tls] is not a table", R"([region]
name = "iad"
[link]
tls = "yes"
)", 4, 7, "link.tls", "expected a table, got string"},
    {"bad pin", R"([region]
name = "iad"
[[peers]]
name = "ams"
address = "127.0.0.1:7423"
pin_sha256 = "abcd"
)", 6, 14, "peers[0].pin_sha256", "64 hex digits"},
    {"bad per-peer compression", R"([region]
name = "iad"
[[peers]]
name = "ams"
address = "127.0.0.1:7423"
compression = "zstd"
)", 6, 15, "peers[0].compression", "must be one of"},
    {"bad link compression", R"([region]
name = "iad"
[link]
compression = "gzip"
)", 4, 15, "link.compression", "must be one of"},

    // --- [region]
    {"region.name missing", R"([region]
priority = 5
)", 1, 1, "region.name", "required key is missing"},
    {"region.name empty", R"([region]
name = ""
)", 2, 8, "region.name", "must not be empty"},
    {"region.name upper case", R"([region]
name = "IAD"
)", 2, 8, "region.name", "invalid name \"IAD\""},
    {"region.name too long", R"([region]
name = "a23456789012345678901234567890123"
)", 2, 8, "region.name", "at most 32 characters"},
    {"region.name not a string", R"([region]
name = 7
)", 2, 8, "region.name", "expected a string, got integer"},
    {"region.priority too low", R"([region]
name = "iad"
priority = 0
)", 3, 12, "region.priority", "must be between 1 and 1000, got 0"},
    {"region.priority too high", R"([region]
name = "iad"
priority = 1001
)", 3, 12, "region.priority", "must be between 1 and 1000, got 1001"},
    {"region.priority a string", R"([region]
name = "iad"
priority = "high"
)", 3, 12, "region.priority", "expected an integer, got string"},
    {"region.priority a float", R"([region]
name = "iad"
priority = 1.5
)", 3, 12, "region.priority", "expected an integer, got float"},

    // --- [nats]
    {"nats.urls empty", R"([region]
name = "iad"
[nats]
urls = []
)", 4, 8, "nats.urls", "must not be empty"},
    {"nats.urls a string", R"([region]
name = "iad"
[nats]
urls = "nats://127.0.0.1:4222"
)", 4, 8, "nats.urls", "expected an array of strings, got string"},
    {"nats.urls element not a string", R"([region]
name = "iad"
[nats]
urls = ["nats://127.0.0.1:4222", 4223]
)", 4, 34, "nats.urls[1]", "expected a string, got integer"},
    {"nats.urls bad scheme", R"([region]
name = "iad"
[nats]
urls = ["http://127.0.0.1:4222"]
)", 4, 9, "nats.urls[0]", "scheme must be nats or tls"},
    {"nats.urls no scheme", R"([region]
name = "iad"
[nats]
urls = ["127.0.0.1:4222"]
)", 4, 9, "nats.urls[0]", "expected \"nats://host:port\""},
    {"nats.urls bad port", R"([region]
name = "iad"
[nats]
urls = ["nats://bob:secret@127.0.0.1:4222x"]
)", 4, 9, "nats.urls[0]", "invalid NATS URL \"nats://bob:***@127.0.0.1:4222x\": port must be 1..65535, got \"4222x\""},
    {"nats.urls port out of range", R"([region]
name = "iad"
[nats]
urls = ["nats://127.0.0.1:99999"]
)", 4, 9, "nats.urls[0]", "port must be 1..65535, got \"99999\""},
    {"nats.urls IPv6 without its bracket", R"([region]
name = "iad"
[nats]
urls = ["nats://[::1:4222"]
)", 4, 9, "nats.urls[0]", "missing ']' after the IPv6 address"},
    {"nats.credentials missing file", R"([region]
name = "iad"
[nats]
credentials = "/nonexistent/isthmus.creds"
)", 4, 15, "nats.credentials", "cannot use \"/nonexistent/isthmus.creds\": No such file or directory"},
    {"nats.credentials a directory", R"([region]
name = "iad"
[nats]
credentials = "/"
)", 4, 15, "nats.credentials", "is not a regular file"},
    {"nats.replicas too low", R"([region]
name = "iad"
[nats]
replicas = 0
)", 4, 12, "nats.replicas", "must be between 1 and 5, got 0"},
    {"nats.replicas too high", R"([region]
name = "iad"
[nats]
replicas = 6
)", 4, 12, "nats.replicas", "must be between 1 and 5, got 6"},
    {"nats.request_timeout an integer", R"([region]
name = "iad"
[nats]
request_timeout = 2
)", 4, 19, "nats.request_timeout", "expected a duration string like \"2s\", got integer"},
    {"nats.request_timeout a TOML time", R"([region]
name = "iad"
[nats]
request_timeout = 00:00:02
)", 4, 19, "nats.request_timeout", "got time"},
    {"nats.request_timeout without unit", R"([region]
name = "iad"
[nats]
request_timeout = "2"
)", 4, 19, "nats.request_timeout", "missing unit"},
    {"nats.request_timeout unknown unit", R"([region]
name = "iad"
[nats]
request_timeout = "2sec"
)", 4, 19, "nats.request_timeout", "unknown unit \"sec\""},
    {"nats.request_timeout too short", R"([region]
name = "iad"
[nats]
request_timeout = "50ms"
)", 4, 19, "nats.request_timeout", "must be between 100ms and 5m, got 50ms"},
    {"nats.reconnect_wait too long", R"([region]
name = "iad"
[nats]
reconnect_wait = "10s"
)", 4, 18, "nats.reconnect_wait", "must be between 10ms and 5s, got 10s"},
    {"nats.pending_bytes_limit too small", R"([region]
name = "iad"
[nats]
pending_bytes_limit = "1KiB"
)", 4, 23, "nats.pending_bytes_limit", "must be between 64KiB and 1GiB, got 1KiB"},
    {"nats.pending_bytes_limit negative", R"([region]
name = "iad"
[nats]
pending_bytes_limit = -1
)", 4, 23, "nats.pending_bytes_limit", "cannot be negative"},
    {"nats.pending_bytes_limit bad unit", R"([region]
name = "iad"
[nats]
pending_bytes_limit = "32Mb"
)", 4, 23, "nats.pending_bytes_limit", "unknown unit \"Mb\""},
    {"nats.pending_bytes_limit a float", R"([region]
name = "iad"
[nats]
pending_bytes_limit = 1.5
)", 4, 23, "nats.pending_bytes_limit", "expected a size (integer bytes, or a string like \"64KiB\"), got float"},

    // --- [link]
    {"link.listen without port", R"([region]
name = "iad"
[link]
listen = "localhost"
)", 4, 10, "link.listen", "missing port"},
    {"link.listen IPv6 without brackets", R"([region]
name = "iad"
[link]
listen = "::1:7422"
)", 4, 10, "link.listen", "must be in brackets"},
    {"link.listen port 0", R"([region]
name = "iad"
[link]
listen = "127.0.0.1:0"
)", 4, 10, "link.listen", "port must be 1..65535"},
    {"link.listen port too big", R"([region]
name = "iad"
[link]
listen = "127.0.0.1:70000"
)", 4, 10, "link.listen", "port must be 1..65535"},
    {"link.listen bad IPv4", R"([region]
name = "iad"
[link]
listen = "300.0.0.1:7422"
)", 4, 10, "link.listen", "not an IPv4 address"},
    {"link.listen not a string", R"([region]
name = "iad"
[link]
listen = 7422
)", 4, 10, "link.listen", "expected a \"host:port\" string, got integer"},
    {"link.max_frame_bytes too small", R"([region]
name = "iad"
[link]
max_frame_bytes = "2KiB"
batch_bytes = "1KiB"
)", 4, 19, "link.max_frame_bytes", "must be between 4KiB and 64MiB, got 2KiB"},
    {"link.max_frame_bytes too big", R"([region]
name = "iad"
[link]
max_frame_bytes = "128MiB"
window_bytes = "256MiB"
)", 4, 19, "link.max_frame_bytes", "must be between 4KiB and 64MiB, got 128MiB"},
    {"link.batch_bytes above half a frame", R"([region]
name = "iad"
[link]
max_frame_bytes = "64KiB"
batch_bytes = "64KiB"
)", 5, 15, "link.batch_bytes", "64KiB exceeds half of link.max_frame_bytes (32KiB)"},
    {"link.batch_bytes default above half a frame", R"([region]
name = "iad"
[link]
max_frame_bytes = "64KiB"
)", 3, 1, "link.batch_bytes", "64KiB exceeds half of link.max_frame_bytes (32KiB) (default)"},
    {"link.batch_bytes too small", R"([region]
name = "iad"
[link]
batch_bytes = 512
)", 4, 15, "link.batch_bytes", "must be between 1KiB and 32MiB, got 512 bytes"},
    {"link.window_messages zero", R"([region]
name = "iad"
[link]
window_messages = 0
)", 4, 19, "link.window_messages", "must be between 1 and 10000000, got 0"},
    {"link.window_bytes below a frame", R"([region]
name = "iad"
[link]
window_bytes = "1MiB"
)", 4, 16, "link.window_bytes", "1MiB is less than link.max_frame_bytes (8MiB)"},
    {"link.peer_window_bytes below a frame", R"([region]
name = "iad"
[link]
peer_window_bytes = "1MiB"
)", 4, 21, "link.peer_window_bytes", "1MiB is less than link.max_frame_bytes (8MiB)"},
    {"link.heartbeat_interval too short", R"([region]
name = "iad"
[link]
heartbeat_interval = "10ms"
)", 4, 22, "link.heartbeat_interval", "must be between 50ms and 1m, got 10ms"},
    {"link.stale_after not above 2 heartbeats", R"([region]
name = "iad"
[link]
heartbeat_interval = "1s"
stale_after = "2s"
)", 5, 15, "link.stale_after", "2s must exceed 2 x link.heartbeat_interval (2s)"},
    {"link.stale_after default vs long heartbeat", R"([region]
name = "iad"
[link]
heartbeat_interval = "5s"
)", 3, 1, "link.stale_after", "10s must exceed 2 x link.heartbeat_interval (10s) (default)"},
    {"link.handshake_timeout fraction of a ms", R"([region]
name = "iad"
[link]
handshake_timeout = "1.0005s"
)", 4, 21, "link.handshake_timeout", "not a whole number of milliseconds"},
    {"link.backoff_max below backoff_min", R"([region]
name = "iad"
[link]
backoff_min = "2s"
backoff_max = "1s"
)", 5, 15, "link.backoff_max", "1s is less than link.backoff_min (2s)"},
    {"link.backoff_min too long", R"([region]
name = "iad"
[link]
backoff_min = "2m"
backoff_max = "5m"
)", 4, 15, "link.backoff_min", "must be between 10ms and 1m, got 2m"},

    // --- [[peers]]
    {"peers as a plain table", R"([region]
name = "iad"
[peers]
name = "ams"
)", 3, 1, "peers", "expected an array of tables ([[peers]]), got table"},
    {"peers.name missing", R"([region]
name = "iad"
[[peers]]
address = "127.0.0.1:7423"
)", 3, 1, "peers[0].name", "required key is missing"},
    {"peers.address missing", R"([region]
name = "iad"
[[peers]]
name = "ams"
address = "127.0.0.1:7423"
[[peers]]
name = "syd"
)", 6, 1, "peers[1].address", "required key is missing"},
    {"peers.name invalid", R"([region]
name = "iad"
[[peers]]
name = "AMS"
address = "127.0.0.1:7423"
)", 4, 8, "peers[0].name", "invalid name \"AMS\""},
    {"peers.name is our own", R"([region]
name = "iad"
[[peers]]
name = "iad"
address = "127.0.0.1:7423"
)", 4, 8, "peers[0].name", "this region's own name"},
    {"peers.name duplicate", R"([region]
name = "iad"
[[peers]]
name = "ams"
address = "127.0.0.1:7423"
[[peers]]
name = "ams"
address = "127.0.0.1:7424"
)", 7, 8, "peers[1].name", "duplicate peer name \"ams\" (first at peers[0].name, line 4)"},
    {"peers.address duplicate", R"([region]
name = "iad"
[[peers]]
name = "ams"
address = "127.0.0.1:7423"
[[peers]]
name = "syd"
address = "127.0.0.1:7423"
)", 8, 11, "peers[1].address", "duplicate peer address \"127.0.0.1:7423\""},
    {"peers.address is our link.listen", R"([region]
name = "iad"
[[peers]]
name = "ams"
address = "127.0.0.1:7422"
)", 5, 11, "peers[0].address", "this region's own link.listen address"},
    {"peers.address invalid", R"([region]
name = "iad"
[[peers]]
name = "ams"
address = "ams:port"
)", 5, 11, "peers[0].address", "port must be a number"},
    {"peers unknown key", R"([region]
name = "iad"
[[peers]]
name = "ams"
address = "127.0.0.1:7423"
priority = 5
)", 6, 1, "peers[0].priority", "unknown key"},

    // --- [http]
    {"http.listen same as link.listen", R"([region]
name = "iad"
[http]
listen = "127.0.0.1:7422"
)", 4, 10, "http.listen", "\"127.0.0.1:7422\" is also link.listen"},
    {"http.listen invalid", R"([region]
name = "iad"
[http]
listen = "[::1:7480"
)", 4, 10, "http.listen", "missing ']'"},

    // --- [[streams]]
    {"streams.name missing", R"([region]
name = "iad"
[[streams]]
leader = "iad"
)", 3, 1, "streams[0].name", "required key is missing"},
    {"streams.leader missing", R"([region]
name = "iad"
[[streams]]
name = "COVENANT_COUNTRIES"
)", 3, 1, "streams[0].leader", "required key is missing"},
    {"streams.name with a dot", R"([region]
name = "iad"
[[streams]]
name = "COVENANT.COUNTRIES"
leader = "iad"
)", 4, 8, "streams[0].name", "must not contain '.'"},
    {"streams.name with a space", R"([region]
name = "iad"
[[streams]]
name = "COVENANT COUNTRIES"
leader = "iad"
)", 4, 8, "streams[0].name", "no spaces"},
    {"streams.name with a wildcard", R"([region]
name = "iad"
[[streams]]
name = "COVENANT_*"
leader = "iad"
)", 4, 8, "streams[0].name", "must not contain '*'"},
    {"streams.name with a path separator", R"([region]
name = "iad"
[[streams]]
name = "a/b"
leader = "iad"
)", 4, 8, "streams[0].name", "must not contain '/'"},
    {"streams.name empty", R"([region]
name = "iad"
[[streams]]
name = ""
leader = "iad"
)", 4, 8, "streams[0].name", "must not be empty"},
    {"streams.name duplicate", R"([region]
name = "iad"
[[streams]]
name = "COVENANT_COUNTRIES"
leader = "iad"
[[streams]]
name = "COVENANT_COUNTRIES"
leader = "iad"
)", 7, 8, "streams[1].name", "duplicate stream \"COVENANT_COUNTRIES\""},
    {"streams.leader unknown", R"([region]
name = "iad"
[[peers]]
name = "ams"
address = "127.0.0.1:7423"
[[streams]]
name = "COVENANT_COUNTRIES"
leader = "syd"
)", 8, 10, "streams[0].leader",
     "unknown region \"syd\"; the leader must be one of \"iad\" (this region), \"ams\""},
    {"streams.leader not a string", R"([region]
name = "iad"
[[streams]]
name = "COVENANT_COUNTRIES"
leader = true
)", 5, 10, "streams[0].leader", "expected a string, got boolean"},

    // --- [log]
    {"log.level unknown", R"([region]
name = "iad"
[log]
level = "verbose"
)", 4, 9, "log.level", "must be one of trace,debug,info,warn,warning,error; got \"verbose\""},
    {"log.format unknown", R"([region]
name = "iad"
[log]
format = "xml"
)", 4, 10, "log.format", "must be one of text,json; got \"xml\""},
    {"log.level not a string", R"([region]
name = "iad"
[log]
level = 3
)", 4, 9, "log.level", "expected a string, got integer"},
    {"log as an array", R"([region]
name = "iad"
[[log]]
level = "info"
)", 3, 1, "log", "expected a table, got array of tables"},
};

}  // namespace

TEST_CASE("every bad configuration reports its one error with position and key", "[config][bad]") {
  // A case with [[peers]] gets valid TLS files appended (after its own
  // lines, so its positions hold): links are always mutual TLS, and without
  // them every such case would also report the three missing files.
  TlsFiles tls;
  for (const BadConfig& c : kBad) {
    std::string toml = c.toml;
    if (toml.find("[[peers]]") != std::string::npos && toml.find("link.tls") == std::string::npos) {
      toml += tls.table();
    }
    INFO("case: " << c.name << "\n" << toml);
    LoadResult r = load_string(toml, "bad.toml");
    REQUIRE_FALSE(r.ok());
    std::string all;
    for (const ConfigError& e : r.errors) all += e.to_string() + "\n";
    INFO("errors:\n" << all);
    REQUIRE(r.errors.size() == 1);
    const ConfigError& e = r.errors[0];
    CHECK(e.file == "bad.toml");
    CHECK(e.line == c.line);
    CHECK(e.column == c.column);
    CHECK(e.key == c.key);
    CHECK_THAT(e.message, Catch::Contains(c.message));
  }
}

TEST_CASE("an array where a table was expected", "[config][bad]") {
  LoadResult r = load_string("peers = [1]\n[region]\nname = \"iad\"\n", "bad.toml");
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].to_string() == "bad.toml:1:10: peers[0]: expected a table, got integer");
}

TEST_CASE("a region with peers must name its TLS files, each error at its line", "[config][bad]") {
  // No [link.tls] at all: reported at the first peer.
  LoadResult none = load_string(R"([region]
name = "iad"
[[peers]]
name = "ams"
address = "127.0.0.1:7423"
)", "bad.toml");
  std::vector<std::string> got;
  for (const ConfigError& e : none.errors) got.push_back(e.to_string());
  CHECK(got == std::vector<std::string>{
                   "bad.toml:4:8: link.tls.ca: required when [[peers]] are configured (links are always mutual TLS)",
                   "bad.toml:4:8: link.tls.cert: required when [[peers]] are configured (links are always mutual TLS)",
                   "bad.toml:4:8: link.tls.key: required when [[peers]] are configured (links are always mutual TLS)",
               });

  // One empty, one absent: at its value, and at the [link.tls] table.
  TlsFiles tls;
  LoadResult some = load_string(R"([region]
name = "iad"
[link.tls]
ca = ""
cert = ")" + tls.path("cert") + R"("
[[peers]]
name = "ams"
address = "127.0.0.1:7423"
)", "bad.toml");
  got.clear();
  for (const ConfigError& e : some.errors) got.push_back(e.to_string());
  CHECK(got == std::vector<std::string>{
                   "bad.toml:3:1: link.tls.key: required when [[peers]] are configured (links are always mutual TLS)",
                   "bad.toml:4:6: link.tls.ca: required when [[peers]] are configured (links are always mutual TLS)",
               });

  // The first peer is not a table: at the first one that is.
  LoadResult second = load_string(R"(peers = [1, { name = "ams", address = "127.0.0.1:7423" }]
[region]
name = "iad"
)", "bad.toml");
  got.clear();
  for (const ConfigError& e : second.errors) got.push_back(e.to_string());
  REQUIRE(got.size() == 4);
  CHECK(got[0] == "bad.toml:1:10: peers[0]: expected a table, got integer");
  CHECK_THAT(got[1], Catch::StartsWith("bad.toml:1:22: link.tls.ca: required when [[peers]]"));

  // [link.tls] itself refused: that error only.
  LoadResult refused = load_string(R"([region]
name = "iad"
[link]
tls = 5
[[peers]]
name = "ams"
address = "127.0.0.1:7423"
)", "bad.toml");
  REQUIRE(refused.errors.size() == 1);
  CHECK(refused.errors[0].key == "link.tls");

  // Without peers (a single region) the files are not needed.
  CHECK(load_string("[region]\nname = \"iad\"\n", "one.toml").ok());
}
