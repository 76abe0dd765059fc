#include "topology.h"

#include <stdexcept>

#include "certs.h"

namespace harness {

namespace {
IsthmusdConfig with_nats(IsthmusdConfig cfg, const std::string& url) {
  cfg.nats_urls = {url};
  return cfg;
}
}  // namespace

Region::Region(const std::string& region_name, const std::string& dir, IsthmusdConfig cfg)
    : name(region_name),
      nats(region_name, dir),
      daemon(with_nats(std::move(cfg), nats.url()), dir) {}

JetStream& Region::js() {
  if (!js_) js_ = std::make_unique<JetStream>(nats.url(), std::chrono::seconds(5), nats.client_options());
  return *js_;
}

Mesh::Mesh(TempDir& tmp, const std::vector<std::string>& names,
           const std::vector<IsthmusdConfig::Stream>& streams, const std::string& log_level)
    : names_(names) {
  std::map<std::string, uint16_t> link_ports;
  for (const auto& n : names) link_ports[n] = free_port();
  for (const auto& n : names) {
    IsthmusdConfig cfg;
    cfg.region = n;
    cfg.link_port = link_ports[n];
    cfg.http_port = free_port();
    cfg.streams = streams;
    cfg.log_level = log_level;
    for (const auto& p : names)
      if (p != n) cfg.peers.push_back({p, link_ports[p], "", "", ""});
    CertFiles certs = region_certs(tmp.path(), n);
    cfg.tls_ca = certs.ca;
    cfg.tls_cert = certs.cert;
    cfg.tls_key = certs.key;
    regions_[n] = std::make_unique<Region>(n, tmp.subdir(n), std::move(cfg));
  }
}

Region& Mesh::operator[](const std::string& name) {
  auto it = regions_.find(name);
  if (it == regions_.end()) throw std::runtime_error("no region " + name);
  return *it->second;
}

void Mesh::start_nats() {
  for (const auto& n : names_) regions_[n]->nats.spawn();
  for (const auto& n : names_) regions_[n]->nats.wait_ready();
}

void Mesh::start_daemons() {
  for (const auto& n : names_) regions_[n]->daemon.spawn();
  for (const auto& n : names_) regions_[n]->daemon.wait_http();
}

}  // namespace harness
