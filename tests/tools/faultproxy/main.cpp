// faultproxy: a TCP fault-injection proxy for tests. See README.md.
//
//   faultproxy --listen 127.0.0.1:0 --target HOST:PORT --control 127.0.0.1:0 [--seed N]
//              [--sockbuf BYTES]   kernel buffers of the proxy's sockets (0: kernel default)
//
// Prints "listen=ADDR control=ADDR" on stdout once both ports are bound, then
// serves until SIGTERM or SIGINT.
#include <netdb.h>
#include <uv.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>

#include "control_server.h"
#include "proxy.h"
#include "reaper.h"
#include "uv_handle.h"

namespace faultproxy {
namespace {

void usage() {
  std::fprintf(stderr,
               "usage: faultproxy --listen HOST:PORT --target HOST:PORT --control HOST:PORT [--seed N] [--sockbuf BYTES]\n");
}

// Splits "HOST:PORT" or "[V6]:PORT".
bool split_host_port(const std::string& s, std::string* host, std::string* port) {
  size_t colon = s.rfind(':');
  if (colon == std::string::npos || colon + 1 == s.size()) return false;
  *host = s.substr(0, colon);
  *port = s.substr(colon + 1);
  if (host->size() >= 2 && host->front() == '[' && host->back() == ']') *host = host->substr(1, host->size() - 2);
  return !host->empty();
}

// Resolves HOST:PORT (names allowed) to the first address.
std::string resolve(uv_loop_t* loop, const std::string& spec, sockaddr_storage* out) {
  std::string host, port;
  if (!split_host_port(spec, &host, &port)) return "bad address '" + spec + "' (want HOST:PORT)";
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  uv_getaddrinfo_t req;
  int rc = uv_getaddrinfo(loop, &req, nullptr, host.c_str(), port.c_str(), &hints);  // synchronous
  if (rc != 0) return "cannot resolve '" + spec + "': " + uv_strerror(rc);
  std::memset(out, 0, sizeof(*out));
  std::memcpy(out, req.addrinfo->ai_addr, req.addrinfo->ai_addrlen);
  uv_freeaddrinfo(req.addrinfo);
  return {};
}

int run(int argc, char** argv) {
  std::string listen_spec, target_spec, control_spec;
  uint64_t seed = std::random_device{}();
  int sockbuf = 0;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (i + 1 >= argc) {
      usage();
      return 2;
    }
    std::string v = argv[++i];
    if (a == "--listen") listen_spec = v;
    else if (a == "--target") target_spec = v;
    else if (a == "--control") control_spec = v;
    else if (a == "--seed") seed = std::strtoull(v.c_str(), nullptr, 10);
    else if (a == "--sockbuf") sockbuf = std::atoi(v.c_str());
    else {
      usage();
      return 2;
    }
  }
  if (listen_spec.empty() || target_spec.empty() || control_spec.empty()) {
    usage();
    return 2;
  }
  std::signal(SIGPIPE, SIG_IGN);

  uv_loop_t loop;
  uv_loop_init(&loop);
  int status = 0;
  {
    sockaddr_storage listen_addr{}, target_addr{}, control_addr{};
    std::string err = resolve(&loop, listen_spec, &listen_addr);
    if (err.empty()) err = resolve(&loop, target_spec, &target_addr);
    if (err.empty()) err = resolve(&loop, control_spec, &control_addr);

    Reaper reaper(&loop);
    Proxy proxy(&loop, &reaper, target_addr, seed);
    proxy.set_socket_buffer(sockbuf);
    ControlServer control(&loop, &reaper, &proxy);
    if (err.empty()) err = proxy.listen(reinterpret_cast<sockaddr*>(&listen_addr));
    if (err.empty()) err = control.listen(reinterpret_cast<sockaddr*>(&control_addr));

    UvHandle<uv_signal_t> sigterm, sigint;
    struct Stopper {
      Proxy* proxy;
      ControlServer* control;
      UvHandle<uv_signal_t>* signals[2];
      void stop() {
        proxy->shutdown();
        control->shutdown();
        for (auto* s : signals) s->close();
      }
    } stopper{&proxy, &control, {&sigterm, &sigint}};
    uv_signal_init(&loop, sigterm.get());
    sigterm.mark_initialized(&stopper);
    uv_signal_init(&loop, sigint.get());
    sigint.mark_initialized(&stopper);

    if (err.empty()) {
      auto on_signal = [](uv_signal_t* h, int) {
        auto* s = static_cast<Stopper*>(h->data);
        if (s != nullptr) s->stop();
      };
      uv_signal_start(sigterm.get(), on_signal, SIGTERM);
      uv_signal_start(sigint.get(), on_signal, SIGINT);
      std::printf("listen=%s control=%s\n", proxy.local_address().c_str(), control.local_address().c_str());
      std::fflush(stdout);
      uv_run(&loop, UV_RUN_DEFAULT);
    } else {
      std::fprintf(stderr, "faultproxy: %s\n", err.c_str());
      status = 1;
    }
    stopper.stop();
    reaper.close();
  }
  // Let the close callbacks free what the owners above released.
  uv_run(&loop, UV_RUN_DEFAULT);
  int rc = uv_loop_close(&loop);
  if (rc != 0) {
    std::fprintf(stderr, "faultproxy: loop closed with handles open: %s\n", uv_err_name(rc));
    return status != 0 ? status : 1;
  }
  return status;
}

}  // namespace
}  // namespace faultproxy

int main(int argc, char** argv) { return faultproxy::run(argc, argv); }
