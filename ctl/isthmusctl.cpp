// isthmusctl: the operator's view of one isthmusd over its HTTP API.
//   isthmusctl [--url URL] [--json] [--timeout D] health|lag [--problems]|links [--watch [--interval D]]
//   isthmusctl [--url URL] [--json] rebuild STREAM [--watch [--interval D]]
// Exit codes: 0 ok, 1 unhealthy (health) or a rebuild that stopped
// (diverged/error), 2 usage, 3 cannot reach the daemon, 4 the daemon
// answered something unexpected, 5 the daemon refused the request.
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <string>

#include <nlohmann/json.hpp>

#include "ctl/http_client.h"
#include "report/render.h"
#include "ctl/url.h"
#include "isthmus_build.h"

namespace {

using isthmus::Code;
using isthmus::ctl::HttpResponse;
using isthmus::ctl::Url;
using Json = nlohmann::json;

enum Exit : int { kOk = 0, kUnhealthy = 1, kUsage = 2, kUnreachable = 3, kUnexpected = 4, kRefused = 5 };

constexpr const char* kDefaultUrl = "http://127.0.0.1:7480";

void usage(FILE* out) {
  std::fprintf(out,
               "usage: isthmusctl [--url URL] [--json] [--timeout D] COMMAND [--watch [--interval D]]\n"
               "\n"
               "commands:\n"
               "  health   the daemon's health: NATS, links, problems (GET /healthz)\n"
               "  lag      replication position and lag per stream and follower (GET /v1/lag):\n"
               "           sequence lag, time lag now and p99 over a minute, AGE (leader: oldest\n"
               "           message not yet stored by the follower; follower: since the newest\n"
               "           applied message was stored at the leader), sync PROGRESS;\n"
               "           --problems: only the rows that need a look (not replicating, AGE 1s or\n"
               "           more, syncing, no recent report from the follower)\n"
               "  links    links to the other regions (GET /v1/links)\n"
               "  rebuild STREAM\n"
               "           rebuild this region's replica of STREAM from its leader\n"
               "           (POST /v1/streams/STREAM/rebuild; the daemon accepts it from loopback only);\n"
               "           with --watch, show its progress until it is done\n"
               "\n"
               "options:\n"
               "  --url URL       the daemon's HTTP API (default %s)\n"
               "  --json          print the daemon's JSON unchanged (one document per line)\n"
               "  --timeout D     give up on a request after D (default 5s)\n"
               "  --watch         refresh until Ctrl-C\n"
               "  --interval D    refresh period with --watch (default 1s)\n"
               "  --version       print the version\n"
               "Durations: 500ms, 1s, 1.5s, 2m, or a bare number of seconds.\n"
               "\n"
               "exit status: 0 ok, 1 unhealthy (health) or the rebuild stopped, 2 usage error,\n"
               "             3 cannot reach the daemon, 4 unexpected answer from the daemon,\n"
               "             5 request refused by the daemon (rebuild)\n",
               kDefaultUrl);
}

int usage_error(const std::string& msg) {
  std::fprintf(stderr, "isthmusctl: %s\n", msg.c_str());
  std::fprintf(stderr, "Try 'isthmusctl --help'.\n");
  return kUsage;
}

struct Options {
  std::string url_text = kDefaultUrl;
  Url url;
  bool json = false;
  bool problems = false;  // lag: only the rows that need a look
  bool watch = false;
  std::string command;
  std::string stream;  // rebuild
  int64_t interval_ms = 1000;
  bool interval_given = false;
  int64_t timeout_ms = 5000;
};

struct Command {
  const char* name;
  const char* path;
};
constexpr Command kCommands[] = {{"health", "/healthz"}, {"lag", "/v1/lag"}, {"links", "/v1/links"}};

volatile std::sig_atomic_t g_stop = 0;

void on_stop_signal(int) { g_stop = 1; }

int64_t wall_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// One request and its rendering. `out` gets what goes to stdout, `err` what
// goes to stderr; the return value is the exit code.
int fetch_once(const Options& o, const Command& cmd, std::string& out, std::string& err) {
  auto r = isthmus::ctl::http_get(o.url, cmd.path, std::chrono::milliseconds(o.timeout_ms));
  if (!r) {
    err = "isthmusctl: " + r.status().message() + "\n";
    if (r.status().code() == Code::kInvalid) return kUnexpected;
    if (r.status().code() != Code::kTimeout && r.status().code() != Code::kUnavailable) {
      err += "isthmusctl: check that isthmusd is running and that --url matches its http.listen\n";
    }
    return kUnreachable;
  }
  const HttpResponse& resp = *r;
  const bool is_health = std::string(cmd.name) == "health";
  const bool status_ok = resp.status == 200 || (is_health && resp.status == 503);
  Json doc;
  if (status_ok) doc = Json::parse(resp.body, nullptr, false);
  if (!status_ok || doc.is_discarded() || !doc.is_object()) {
    std::string body = resp.body.substr(0, 200);
    err = "isthmusctl: unexpected answer from " + o.url.to_string() + cmd.path + ": HTTP " +
          std::to_string(resp.status) + (resp.reason.empty() ? "" : " " + resp.reason) +
          (body.empty() ? "" : ": " + body) + "\n";
    return kUnexpected;
  }
  int code = kOk;
  if (is_health) code = resp.status == 200 && doc.value("status", "") == "ok" ? kOk : kUnhealthy;
  if (o.json) {
    out = resp.body;
    if (out.empty() || out.back() != '\n') out += '\n';
    return code;
  }
  try {
    if (is_health) {
      out = isthmus::report::render_health(doc);
    } else if (std::string(cmd.name) == "lag") {
      out = isthmus::report::render_lag(doc, o.problems);
    } else {
      out = isthmus::report::render_links(doc, wall_ns());
    }
  } catch (const Json::exception& e) {
    err = "isthmusctl: unexpected JSON from " + o.url.to_string() + cmd.path + ": " + e.what() + "\n";
    return kUnexpected;
  }
  return code;
}

// Sleeps up to `ms`, returning early on SIGINT/SIGTERM.
void sleep_ms(int64_t ms) {
  auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (g_stop == 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now()).count();
    if (left <= 0) return;
    ::poll(nullptr, 0, static_cast<int>(left));
  }
}

std::string local_time() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  ::localtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

// Refreshes until SIGINT/SIGTERM. On a terminal the frame is redrawn in
// place; otherwise frames follow each other (with --json: one document per
// line). A failed request is shown and retried: the daemon may be
// restarting. Returns 0 when stopped by a signal.
int watch(const Options& o, const Command& cmd) {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: poll() returns at once
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  const bool tty = !o.json && ::isatty(STDOUT_FILENO) == 1;
  const std::string interval =
      o.interval_ms % 1000 == 0 ? std::to_string(o.interval_ms / 1000) + "s" : std::to_string(o.interval_ms) + "ms";

  while (g_stop == 0) {
    std::string out, err;
    fetch_once(o, cmd, out, err);
    if (g_stop != 0) break;
    if (o.json) {
      std::fputs(out.c_str(), stdout);
      std::fputs(err.c_str(), stderr);
    } else {
      std::string frame = "isthmusctl " + std::string(cmd.name) + " --watch  " + o.url.to_string() + "  every " +
                          interval + "  " + local_time() + "  (Ctrl-C to stop)\n\n" + out + err;
      if (tty) {
        // Home, then each line followed by erase-to-end-of-line, then erase
        // below: no flicker, nothing left over from a longer frame.
        std::string screen = "\x1b[H";
        size_t pos = 0;
        while (pos < frame.size()) {
          size_t nl = frame.find('\n', pos);
          if (nl == std::string::npos) nl = frame.size();
          screen.append(frame, pos, nl - pos);
          screen += "\x1b[K\n";
          pos = nl + 1;
        }
        screen += "\x1b[J";
        std::fputs(screen.c_str(), stdout);
      } else {
        std::fputs((frame + "\n").c_str(), stdout);
      }
    }
    std::fflush(stdout);
    sleep_ms(o.interval_ms);
  }
  return kOk;
}

int unreachable(const isthmus::Status& st) {
  std::fprintf(stderr, "isthmusctl: %s\n", st.message().c_str());
  if (st.code() == Code::kInvalid) return kUnexpected;
  if (st.code() != Code::kTimeout && st.code() != Code::kUnavailable) {
    std::fprintf(stderr, "isthmusctl: check that isthmusd is running and that --url matches its http.listen\n");
  }
  return kUnreachable;
}

// rebuild STREAM: POST, then with --watch one progress line per interval
// until the stream replicates again (0), stops (1) or Ctrl-C (0; the rebuild
// goes on in the daemon).
int rebuild(const Options& o) {
  const std::string path = "/v1/streams/" + o.stream + "/rebuild";
  auto r = isthmus::ctl::http_request(o.url, "POST", path, "", std::chrono::milliseconds(o.timeout_ms));
  if (!r) return unreachable(r.status());
  Json doc = Json::parse(r->body, nullptr, false);
  if (r->status != 202) {
    std::string why = !doc.is_discarded() && doc.is_object() && doc.contains("error") && doc["error"].is_string()
                          ? doc["error"].get<std::string>()
                          : r->body.substr(0, 200);
    std::fprintf(stderr, "isthmusctl: rebuild of %s refused: HTTP %d: %s\n", o.stream.c_str(), r->status,
                 why.c_str());
    if (r->status == 403) {
      std::fprintf(stderr, "isthmusctl: run isthmusctl on the daemon's host, with --url pointing at 127.0.0.1\n");
    }
    return r->status == 403 || r->status == 404 || r->status == 409 ? kRefused : kUnexpected;
  }
  if (o.json) {
    std::printf("%s\n", r->body.c_str());
  } else {
    std::printf("rebuild of %s accepted: foreign messages go aside, then the replica is synced again from %s\n",
                o.stream.c_str(), doc.is_object() ? doc.value("leader", std::string("its leader")).c_str() : "?");
  }
  std::fflush(stdout);
  if (!o.watch) return kOk;
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  // Give the daemon a moment to leave "replicating" for "rebuilding".
  sleep_ms(std::min<int64_t>(o.interval_ms, 500));
  std::string last_line;
  auto last_printed = std::chrono::steady_clock::now();
  while (g_stop == 0) {
    auto lag = isthmus::ctl::http_get(o.url, "/v1/lag", std::chrono::milliseconds(o.timeout_ms));
    if (!lag) {
      std::fprintf(stderr, "isthmusctl: %s (retrying)\n", lag.status().message().c_str());
    } else {
      Json j = Json::parse(lag->body, nullptr, false);
      bool finished = false, failed = false;
      std::string line;
      try {
        line = isthmus::report::render_rebuild(j, o.stream, finished, failed);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "isthmusctl: unexpected answer from %s/v1/lag: %s\n", o.url.to_string().c_str(),
                     e.what());
        return kUnexpected;
      }
      if (o.json) {
        std::printf("%s\n", lag->body.c_str());
      } else if (line != last_line || std::chrono::steady_clock::now() - last_printed > std::chrono::seconds(30)) {
        // The same line again, e.g. "0 to go" while the last step runs,
        // says nothing new; but every 30 s, so a stalled step shows.
        std::printf("%s  %s", local_time().c_str(), line.c_str());
        last_line = line;
        last_printed = std::chrono::steady_clock::now();
      }
      std::fflush(stdout);
      if (finished) return kOk;
      if (failed) return kUnhealthy;
    }
    sleep_ms(o.interval_ms);
  }
  return kOk;
}

// Parses "--opt VALUE" and "--opt=VALUE". Returns false if `a` is not `name`.
bool take_value(const std::string& a, const char* name, int argc, char** argv, int& i, std::string& value,
                std::string& missing) {
  std::string n = name;
  if (a == n) {
    if (i + 1 >= argc) {
      missing = n + " needs a value";
      return true;
    }
    value = argv[++i];
    return true;
  }
  if (a.rfind(n + "=", 0) == 0) {
    value = a.substr(n.size() + 1);
    return true;
  }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    std::string value, missing;
    if (a == "--help" || a == "-h") {
      usage(stdout);
      return kOk;
    }
    if (a == "--version" || a == "-V") {
      std::printf("isthmusctl %s\n", ISTHMUS_VERSION);
      return kOk;
    }
    if (a == "--json") {
      o.json = true;
    } else if (a == "--problems") {
      o.problems = true;
    } else if (a == "--watch" || a == "-w") {
      o.watch = true;
    } else if (take_value(a, "--url", argc, argv, i, value, missing)) {
      if (!missing.empty()) return usage_error(missing);
      o.url_text = value;
    } else if (take_value(a, "--interval", argc, argv, i, value, missing) ||
               take_value(a, "--timeout", argc, argv, i, value, missing)) {
      if (!missing.empty()) return usage_error(missing);
      auto d = isthmus::report::parse_duration_ms(value);
      if (!d) return usage_error(d.status().message());
      if (a.rfind("--interval", 0) == 0) {
        o.interval_ms = std::max<int64_t>(*d, 100);
        o.interval_given = true;
      } else {
        o.timeout_ms = *d;
      }
    } else if (!a.empty() && a[0] == '-') {
      return usage_error("unknown option '" + a + "'");
    } else if (o.command.empty()) {
      o.command = a;
    } else if (o.command == "rebuild" && o.stream.empty()) {
      o.stream = a;
    } else {
      return usage_error("unexpected argument '" + a + "'");
    }
  }
  if (o.command.empty()) {
    usage(stderr);
    return kUsage;
  }
  const Command* cmd = nullptr;
  for (const auto& c : kCommands) {
    if (o.command == c.name) cmd = &c;
  }
  if (cmd == nullptr && o.command != "rebuild") {
    return usage_error("unknown command '" + o.command + "' (health, lag, links, rebuild)");
  }
  if (o.interval_given && !o.watch) return usage_error("--interval needs --watch");
  if (o.problems && o.command != "lag") return usage_error("--problems is an option of lag");
  auto url = isthmus::ctl::parse_url(o.url_text);
  if (!url) return usage_error(url.status().message());
  o.url = *url;
  if (o.command == "rebuild") {
    if (o.stream.empty()) return usage_error("rebuild needs a stream name");
    if (o.stream.find_first_of("/?#%. \t*>") != std::string::npos) {
      return usage_error("'" + o.stream + "' is not a stream name");
    }
    return rebuild(o);
  }

  if (o.watch) return watch(o, *cmd);
  std::string out, err;
  int code = fetch_once(o, *cmd, out, err);
  std::fputs(out.c_str(), stdout);
  std::fputs(err.c_str(), stderr);
  return code;
}
