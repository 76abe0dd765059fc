// ConnectWatchdog: ends a cnats connect attempt that outlives its timeout.
//
// cnats 3.4.1 reads the server's answer to its CONNECT and PING one byte at
// a time and, once the connect timeout has passed, keeps reading without
// ever returning: each read fails at once with a timeout, the loop appends
// a byte and tries again (nats-io/nats.c issue #706, fixed upstream after
// 3.4). A server that sent INFO but never answers (stopped or wedged right
// after accepting, or not a nats-server) would hang natsConnection_Connect
// for ever: about half a core spinning, memory growing by about 1 MB/s, the
// other nats.urls entries never tried, SIGTERM waiting for it.
//
// The watchdog is armed around one natsConnection_Connect call with the
// host and port it dials. Every 100 ms it looks for TCP sockets of this
// process opened since it was armed and connected to one of that host's
// addresses at that port; one that has stayed connected longer than
// `limit` is shut down (shutdown(2) through a duplicate of the descriptor
// that is checked to be the same socket; never closed: the descriptor stays
// cnats'). cnats' next read then sees the end of the stream and the connect
// fails; disarm() tells the caller whether that happened.
//
// What it could hit besides cnats' socket: another socket this process
// opens to the same address and port while the connect runs. The daemon's
// other connection to the local nats-server (nats/data_conn.h) is opened
// only while cnats' connection stands, i.e. never during a connect attempt;
// a socket that existed before the watchdog was armed is never touched.
// If the process's descriptors cannot be listed, or the host not resolved,
// it does not arm (the connect runs as cnats alone would).
//
// Lifetime: one per connect attempt, on the thread that calls
// natsConnection_Connect (the Client's worker); it runs one thread of its
// own until disarmed (disarm() or the destructor).
#pragma once

#include <sys/socket.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace isthmus::nats {

class ConnectWatchdog {
 public:
  // Arms: resolves host, remembers the process's sockets that exist now and
  // starts watching.
  ConnectWatchdog(const std::string& host, uint16_t port, std::chrono::milliseconds limit);
  ~ConnectWatchdog();  // disarm()
  ConnectWatchdog(const ConnectWatchdog&) = delete;
  ConnectWatchdog& operator=(const ConnectWatchdog&) = delete;

  // Stops watching (joins its thread); then true if it shut a socket down.
  // Call it as soon as the connect has returned.
  bool disarm();

 private:
  void watch();
  bool is_target(int fd) const;  // a connected TCP socket to one of addrs_

  const std::chrono::milliseconds limit_;
  std::vector<sockaddr_storage> addrs_;  // host's addresses, with the port
  std::set<unsigned long> before_;       // socket inodes that existed when armed
  std::mutex mu_;
  std::condition_variable cv_;
  bool disarmed_ = false;
  bool fired_ = false;
  std::thread thread_;
};

}  // namespace isthmus::nats
