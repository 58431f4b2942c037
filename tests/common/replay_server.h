// A recorded-answer HTTP/1.1 server for client tests: listens on a unix socket or on 127.0.0.1
// (an ephemeral port), reads each request's head and hands it to a handler that writes the
// answer bytes itself (so it can stream a chunked body, stop halfway, or close without a word).
// One connection at a time, on one thread; the destructor stops it.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace faultline::testing {

class ReplayServer {
 public:
  struct Request {
    std::string method, target, head;  // head: the request line and headers
  };
  // Writes the answer to `fd`; returning closes the connection.
  using Handler = std::function<void(const Request&, int fd)>;

  // On a unix socket at `path` (replaced), or on 127.0.0.1 when `path` is empty.
  ReplayServer(const std::string& path, Handler handler) : handler_(std::move(handler)) {
    if (path.empty()) {
      fd_ = socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a));
      socklen_t len = sizeof(a);
      getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
      port_ = ntohs(a.sin_port);
    } else {
      unlink(path.c_str());
      fd_ = socket(AF_UNIX, SOCK_STREAM, 0);
      sockaddr_un a{};
      a.sun_family = AF_UNIX;
      std::strncpy(a.sun_path, path.c_str(), sizeof(a.sun_path) - 1);
      bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    }
    listen(fd_, 16);
    thread_ = std::thread([this] { Serve(); });
  }
  ~ReplayServer() {
    stop_ = true;
    shutdown(fd_, SHUT_RDWR);
    close(fd_);
    thread_.join();
  }
  int port() const { return port_; }
  std::vector<std::string> targets() const {
    std::lock_guard<std::mutex> lock(mu_);
    return targets_;
  }

  static void Write(int fd, const std::string& bytes) {
    size_t off = 0;
    while (off < bytes.size()) {
      const ssize_t n = send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return;
      off += static_cast<size_t>(n);
    }
  }
  static std::string Answer(int status, const std::string& body,
                            const std::string& type = "application/json") {
    return "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Type: " + type +
           "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
  }

 private:
  void Serve() {
    while (!stop_) {
      const int c = accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      std::string head;
      char buf[4096];
      while (head.find("\r\n\r\n") == std::string::npos) {
        const ssize_t n = recv(c, buf, sizeof(buf), 0);
        if (n <= 0) break;
        head.append(buf, static_cast<size_t>(n));
      }
      Request r;
      r.head = head.substr(0, head.find("\r\n\r\n"));
      const size_t sp1 = head.find(' '), sp2 = head.find(' ', sp1 + 1);
      if (sp1 != std::string::npos && sp2 != std::string::npos) {
        r.method = head.substr(0, sp1);
        r.target = head.substr(sp1 + 1, sp2 - sp1 - 1);
        {
          std::lock_guard<std::mutex> lock(mu_);
          targets_.push_back(r.target);
        }
        handler_(r, c);
      }
      close(c);
    }
  }

  Handler handler_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  std::vector<std::string> targets_;
  std::thread thread_;
};

}  // namespace faultline::testing
