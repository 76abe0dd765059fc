#include "isthmusd.h"

#include <signal.h>
#include <unistd.h>

#include <iostream>

#include "util.h"

using nlohmann::json;

namespace harness {

namespace {
std::string quote(const std::string& s) {
  std::string o = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\';
    o += c;
  }
  return o + "\"";
}
}  // namespace

std::string IsthmusdConfig::to_toml() const {
  std::string t;
  t += "# written by the isthmus integration-test harness\n";
  t += "[region]\nname = " + quote(region) + "\n\n";
  t += "[nats]\nurls = [";
  for (size_t i = 0; i < nats_urls.size(); ++i) t += (i ? ", " : "") + quote(nats_urls[i]);
  t += "]\n";
  if (!nats_extra.empty()) t += nats_extra + "\n";
  t += "\n";
  t += "[link]\nlisten = " + quote("127.0.0.1:" + std::to_string(link_port)) + "\n";
  if (!compression.empty()) t += "compression = " + quote(compression) + "\n";
  if (!link_extra.empty()) t += link_extra + "\n";
  t += "\n";
  if (!tls_ca.empty()) {
    t += "[link.tls]\nca = " + quote(tls_ca) + "\ncert = " + quote(tls_cert) + "\nkey = " + quote(tls_key) +
         "\n\n";
  }
  for (const auto& p : peers) {
    t += "[[peers]]\nname = " + quote(p.name) + "\naddress = " +
         quote(p.address.empty() ? "127.0.0.1:" + std::to_string(p.port) : p.address) + "\n";
    if (!p.pin_sha256.empty()) t += "pin_sha256 = " + quote(p.pin_sha256) + "\n";
    if (!p.compression.empty()) t += "compression = " + quote(p.compression) + "\n";
    t += "\n";
  }
  t += "[http]\nlisten = " + quote(http_host + ":" + std::to_string(http_port)) + "\n\n";
  for (const auto& s : streams) {
    t += "[[streams]]\nname = " + quote(s.name) + "\nleader = " + quote(s.leader) + "\n\n";
  }
  t += "[log]\nlevel = " + quote(log_level) + "\n";
  if (!extra.empty()) t += "\n" + extra + "\n";
  return t;
}

std::string Isthmusd::binary() {
  std::string build = env_or("ISTHMUS_BUILD_DIR", "");
  if (build.empty()) throw Fatal("ISTHMUS_BUILD_DIR is not set (run the tests through meson test)");
  std::string p = build + "/daemon/isthmusd";
  if (::access(p.c_str(), X_OK) != 0) throw Fatal(p + " is missing or not executable");
  return p;
}

Isthmusd::Isthmusd(IsthmusdConfig cfg, std::string dir)
    : cfg_(std::move(cfg)),
      dir_(std::move(dir)),
      conf_(dir_ + "/isthmusd-" + cfg_.region + ".toml"),
      log_(dir_ + "/isthmusd-" + cfg_.region + ".log") {
  write_config();
}

Isthmusd::~Isthmusd() {
  if (test_failed()) {
    std::cerr << "[harness] isthmusd " << cfg_.region << " (http " << cfg_.http_port << ") log tail, "
              << log_ << ":\n"
              << log_tail(40);
  }
  proc_.kill();
}

void Isthmusd::write_config() { write_file(conf_, cfg_.to_toml()); }

void Isthmusd::spawn() { proc_.spawn({binary(), "--config", conf_}, log_, env_); }

void Isthmusd::start(std::chrono::milliseconds timeout) {
  spawn();
  wait_http(timeout);
}

void Isthmusd::wait_http(std::chrono::milliseconds timeout) {
  check_for(
      timeout,
      [&](std::string& state) {
        ensure_running("while waiting for its HTTP server");
        auto r = http_get("/healthz", std::chrono::seconds(2));
        state = std::to_string(r.status) + " " + r.body;
        return r.status > 0;
      },
      "isthmusd " + cfg_.region + " answering HTTP on port " + std::to_string(cfg_.http_port));
}

ExitStatus Isthmusd::kill9() { return proc_.kill(); }

ExitStatus Isthmusd::terminate(std::chrono::milliseconds grace) { return proc_.terminate(grace); }

void Isthmusd::restart(bool graceful) {
  if (graceful)
    terminate();
  else
    kill9();
  start();
}

void Isthmusd::ensure_running(const std::string& context) {
  if (proc_.running()) return;
  std::string st = proc_.status() ? proc_.status()->to_string() : "never started";
  throw Fatal("isthmusd " + cfg_.region + " is not running (" + st + ")" +
              (context.empty() ? "" : " " + context) + "; log " + log_ + ":\n" + log_tail(30));
}

HttpResponse Isthmusd::http_get(const std::string& path, std::chrono::milliseconds timeout) {
  return harness::http_get(cfg_.http_port, path, timeout);
}

HttpResponse Isthmusd::http_post(const std::string& path, const std::string& body,
                                 std::chrono::milliseconds timeout) {
  return harness::http_post(cfg_.http_port, path, body, timeout);
}

json Isthmusd::lag() {
  auto r = http_get("/v1/lag");
  if (r.status != 200)
    throw std::runtime_error("isthmusd " + cfg_.region + " /v1/lag: " + std::to_string(r.status) + " " + r.body);
  json j = json::parse(r.body, nullptr, false);
  if (j.is_discarded()) throw std::runtime_error("isthmusd " + cfg_.region + " /v1/lag: not JSON: " + r.body);
  return j;
}

std::optional<json> Isthmusd::lag_stream(const std::string& stream) {
  json j = lag();
  if (!j.contains("streams") || !j["streams"].is_array()) return std::nullopt;
  for (const auto& s : j["streams"])
    if (s.is_object() && s.value("stream", "") == stream) return s;
  return std::nullopt;
}

std::string Isthmusd::log_tail(int lines) const { return tail_file(log_, lines); }

}  // namespace harness
