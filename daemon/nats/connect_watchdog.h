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
// port it dials. It looks (every 100 ms while armed) for TCP sockets of
// this process opened since it was armed and connected to that port; one
// that has stayed connected longer than `limit` while the connect is still
// running is shut down (shutdown(2), never closed: the descriptor stays
// cnats'). cnats' next read then sees the end of the stream and the connect
// fails; fired() tells the caller why.
//
// What it could hit besides cnats' socket: another socket this process
// opens to the same port while the connect runs. The daemon's other
// connection to the local nats-server (nats/data_conn.h) is opened only
// while cnats' connection stands, i.e. never during a connect attempt; a
// socket that existed before the watchdog was armed is never touched.
//
// Lifetime: one per connect attempt, on the thread that calls
// natsConnection_Connect (the Client's worker); it runs one thread of its
// own while armed, joined by the destructor.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <set>
#include <thread>

namespace isthmus::nats {

class ConnectWatchdog {
 public:
  // Arms: remembers the process's sockets that exist now and starts watching.
  ConnectWatchdog(uint16_t port, std::chrono::milliseconds limit);
  // Disarms and joins the watching thread.
  ~ConnectWatchdog();
  ConnectWatchdog(const ConnectWatchdog&) = delete;
  ConnectWatchdog& operator=(const ConnectWatchdog&) = delete;

  // After the connect returned: true if a socket was shut down (the connect
  // failed, or is to be treated as failed, because of the watchdog).
  bool fired() const;

 private:
  void watch();

  const uint16_t port_;
  const std::chrono::milliseconds limit_;
  std::set<unsigned long> before_;  // socket inodes that existed when armed
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool disarmed_ = false;
  bool fired_ = false;
  std::thread thread_;
};

}  // namespace isthmus::nats
