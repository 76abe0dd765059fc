#include "config/config.h"

namespace isthmus::config {

std::string HostPort::to_string() const {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

const Peer* Config::find_peer(const std::string& name) const {
  for (const Peer& p : peers) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

bool Config::compress_link(const Peer& peer) const {
  const std::string& c = peer.compression == "link" || peer.compression.empty() ? link.compression : peer.compression;
  return c == "s2";
}

std::string ConfigError::to_string() const {
  std::string out = file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": ";
  if (!key.empty()) out += key + ": ";
  return out + message;
}

}  // namespace isthmus::config
