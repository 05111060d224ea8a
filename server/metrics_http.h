// The /metrics HTTP endpoint: a small HTTP/1.1 server (GET and HEAD, one request per
// connection) that renders a prometheus-cpp registry in the text exposition format.
//
// It takes the place of prometheus-cpp's Exposer, whose web server (civetweb as packaged in
// Debian 12) starts its threads with a fixed 100 KiB stack: pthread_create refuses such a
// stack in a process whose libraries need more thread-local storage than that, as LibTorch
// with CUDA does, so the Exposer could not start in a CUDA build of the server. The threads
// here use the default stack size.
#pragma once

#include <prometheus/registry.h>

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace mixserve {

class MetricsHttpServer {
 public:
  MetricsHttpServer() = default;
  ~MetricsHttpServer() { Stop(); }
  MetricsHttpServer(const MetricsHttpServer&) = delete;
  MetricsHttpServer& operator=(const MetricsHttpServer&) = delete;

  // Binds `address` ("host:port", "[v6]:port", port 0 for any free port) and serves
  // `registry`. Returns "" and sets *port to the bound port, or returns the cause.
  std::string Start(const std::string& address, std::shared_ptr<prometheus::Registry> registry,
                    int* port);
  // Stops accepting, waits for the connections being answered, closes the socket.
  void Stop();

  static constexpr int kMaxConnections = 8;      // more at once are answered 503
  static constexpr int kIoTimeoutSeconds = 5;    // per read/write on a connection
  static constexpr size_t kMaxRequestBytes = 8192;

 private:
  void AcceptLoop();
  void Serve(int fd);

  std::shared_ptr<prometheus::Registry> registry_;
  int listen_fd_ = -1;
  std::atomic<bool> stop_{false};
  std::thread acceptor_;
  std::mutex mu_;
  std::condition_variable idle_;
  int active_ = 0;
};

}  // namespace mixserve
