// The one HTTP server of every faultline process: /metrics (Prometheus text), /healthz and
// /readyz (a Health), and the routes a process adds (the stream's /windows and /status, the
// diagnosis's /incidents). GET only; routes are fixed at start. Handlers run on the server's
// threads, so whatever they read must be thread-safe.
//
// Addresses: "HOST:PORT" with an IPv4 host or name, or "[v6]:PORT"; port 0 binds any free port
// (port() tells which). Errors name the flag the address came from.
//
// This header keeps cpp-httplib out of its includers.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "faultline/common/status.h"

namespace faultline {

class Health;           // health.h
class MetricsRegistry;  // metrics.h

struct HttpRequest {
  // The route pattern's capture groups (a pattern is a regular expression over the path).
  std::vector<std::string> matches;
  // Query parameters (the last value of each).
  std::map<std::string, std::string> params;
};

struct HttpReply {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
  // A reply of `status` with a plain-text `message` and a newline.
  static HttpReply Text(int status, const std::string& message);
  // The HTTP status of an error: 400 invalid argument, 404 not found, 503 unavailable, else 500;
  // its message as plain text.
  static HttpReply Error(const Status& status);
};

struct HttpRoute {
  std::string pattern;  // "/incidents", R"(/incidents/([A-Za-z0-9_-]+))"
  std::function<HttpReply(const HttpRequest&)> handler;
};

struct HttpServerOptions {
  // Required: where to listen.
  std::string addr;
  // The flag `addr` came from, for errors. Default: "--http-addr".
  std::string flag = "--http-addr";
  // Served on /metrics when given (it must outlive the server). Default: none.
  const MetricsRegistry* metrics = nullptr;
  // Served on /healthz and /readyz when given (it must outlive the server). Default: none.
  const Health* health = nullptr;
  std::vector<HttpRoute> routes;
};

// Splits "HOST:PORT" or "[v6]:PORT" into a host (brackets removed) and a port 0..65535.
// Errors: kInvalidArgument naming `flag` and the address.
Status ParseListenAddress(const std::string& flag, const std::string& addr, std::string* host,
                          int* port);

class HttpServer {
 public:
  // Binds and starts serving on a thread of its own. Errors: kInvalidArgument for the address,
  // kUnavailable when it cannot listen there.
  static Result<std::unique_ptr<HttpServer>> Start(HttpServerOptions options);
  // Stops serving (requests in flight finish first).
  ~HttpServer();
  // The port bound (the one chosen, with port 0).
  int port() const;

 private:
  HttpServer() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace faultline
