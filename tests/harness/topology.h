// Regions for tests: each a nats-server plus an isthmusd, on free ports,
// wired as a full mesh. Nothing is started by the constructors.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "isthmusd.h"
#include "jetstream.h"
#include "nats_server.h"
#include "util.h"

namespace harness {

class Region {
 public:
  Region(const std::string& name, const std::string& dir, IsthmusdConfig cfg);
  Region(const Region&) = delete;
  Region& operator=(const Region&) = delete;

  const std::string name;
  NatsServer nats;
  Isthmusd daemon;

  // A client of this region's nats-server, connected on first use; it
  // reconnects by itself across server restarts.
  JetStream& js();
  void drop_js() { js_.reset(); }

 private:
  std::unique_ptr<JetStream> js_;
};

class Mesh {
 public:
  // One Region per name, each in tmp/<name>; every daemon lists every other
  // region as a peer and serves `streams`.
  Mesh(TempDir& tmp, const std::vector<std::string>& names,
       const std::vector<IsthmusdConfig::Stream>& streams, const std::string& log_level = "info");

  Region& operator[](const std::string& name);
  void start_nats();
  void start_daemons();

 private:
  std::vector<std::string> names_;
  std::map<std::string, std::unique_ptr<Region>> regions_;
};

}  // namespace harness
