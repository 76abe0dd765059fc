// isthmusctl: the operator's view of one isthmusd over its HTTP API.
//   isthmusctl [--url URL] [--json] [--timeout D] health|lag|links [--watch [--interval D]]
// Exit codes: 0 ok, 1 unhealthy (health), 2 usage, 3 cannot reach the
// daemon, 4 the daemon answered something unexpected.
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
#include "ctl/render.h"
#include "ctl/url.h"
#include "isthmus_build.h"

namespace {

using isthmus::Code;
using isthmus::ctl::HttpResponse;
using isthmus::ctl::Url;
using Json = nlohmann::json;

enum Exit : int { kOk = 0, kUnhealthy = 1, kUsage = 2, kUnreachable = 3, kUnexpected = 4 };

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
               "           applied message was stored at the leader), sync PROGRESS\n"
               "  links    links to the other regions (GET /v1/links)\n"
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
               "exit status: 0 ok, 1 unhealthy (health), 2 usage error, 3 cannot reach the daemon,\n"
               "             4 unexpected answer from the daemon\n",
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
  bool watch = false;
  std::string command;
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
      out = isthmus::ctl::render_health(doc);
    } else if (std::string(cmd.name) == "lag") {
      out = isthmus::ctl::render_lag(doc);
    } else {
      out = isthmus::ctl::render_links(doc, wall_ns());
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
    } else if (a == "--watch" || a == "-w") {
      o.watch = true;
    } else if (take_value(a, "--url", argc, argv, i, value, missing)) {
      if (!missing.empty()) return usage_error(missing);
      o.url_text = value;
    } else if (take_value(a, "--interval", argc, argv, i, value, missing) ||
               take_value(a, "--timeout", argc, argv, i, value, missing)) {
      if (!missing.empty()) return usage_error(missing);
      auto d = isthmus::ctl::parse_duration_ms(value);
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
  if (cmd == nullptr) return usage_error("unknown command '" + o.command + "' (health, lag, links)");
  if (o.interval_given && !o.watch) return usage_error("--interval needs --watch");
  auto url = isthmus::ctl::parse_url(o.url_text);
  if (!url) return usage_error(url.status().message());
  o.url = *url;

  if (o.watch) return watch(o, *cmd);
  std::string out, err;
  int code = fetch_once(o, *cmd, out, err);
  std::fputs(out.c_str(), stdout);
  std::fputs(err.c_str(), stderr);
  return code;
}
