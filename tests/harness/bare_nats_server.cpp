#include "bare_nats_server.h"

#include "http_client.h"
#include "nats_server.h"

namespace harness {

BareNatsServer::BareNatsServer(const TempDir& tmp, const std::string& name, const std::string& extra_config)
    : port_(free_port()), monitor_(free_port()) {
  std::string dir = tmp.subdir(name);
  std::string conf = dir + "/nats.conf";
  write_file(conf, "listen: \"127.0.0.1:" + std::to_string(port_) + "\"\nhttp: \"127.0.0.1:" +
                       std::to_string(monitor_) + "\"\nmax_payload: 65536\n" + extra_config);
  proc_.spawn({NatsServer::binary(), "-c", conf}, dir + "/nats.log");
  check_for(
      std::chrono::seconds(20),
      [this] {
        if (!proc_.running()) throw Fatal("nats-server exited: " + tail_file(proc_.log_path(), 20));
        return http_get(monitor_, "/healthz", std::chrono::seconds(1)).status == 200;
      },
      "nats-server " + name + " ready");
}

nlohmann::json BareNatsServer::connz() {
  auto r = http_get(monitor_, "/connz", std::chrono::seconds(2));
  if (r.status != 200) throw std::runtime_error("/connz: HTTP " + std::to_string(r.status));
  return nlohmann::json::parse(r.body);
}

}  // namespace harness
