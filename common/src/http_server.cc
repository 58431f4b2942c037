#include "faultline/common/http_server.h"

#include <httplib.h>

#include <charconv>
#include <thread>

#include "faultline/common/health.h"
#include "faultline/common/metrics.h"

namespace faultline {

HttpReply HttpReply::Text(int status, const std::string& message) {
  return {status, message + "\n", "text/plain"};
}

HttpReply HttpReply::Error(const Status& status) {
  const StatusCode c = status.code();
  const int http = c == StatusCode::kInvalidArgument ? 400
                   : c == StatusCode::kNotFound      ? 404
                   : c == StatusCode::kUnavailable   ? 503
                                                     : 500;
  return Text(http, status.message());
}

Status ParseListenAddress(const std::string& flag, const std::string& addr, std::string* host,
                          int* port) {
  const size_t colon = addr.rfind(':');
  const size_t bracket = addr.rfind(']');
  if (colon == std::string::npos || colon + 1 == addr.size() ||
      (bracket != std::string::npos && colon < bracket))
    return InvalidArgument(flag + " '" + addr + "': expected HOST:PORT, e.g. 127.0.0.1:9464");
  const std::string_view digits = std::string_view(addr).substr(colon + 1);
  int p = -1;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), p);
  if (ec != std::errc() || end != digits.data() + digits.size() || p < 0 || p > 65535)
    return InvalidArgument(flag + " '" + addr + "': the port must be a number 0..65535");
  *host = addr.substr(0, colon);
  if (host->size() > 2 && host->front() == '[' && host->back() == ']')
    *host = host->substr(1, host->size() - 2);
  *port = p;
  return Status::Ok();
}

struct HttpServer::Impl {
  httplib::Server http;
  std::thread thread;
  int port = 0;
  ~Impl() {
    http.stop();
    if (thread.joinable()) thread.join();
  }
};

Result<std::unique_ptr<HttpServer>> HttpServer::Start(HttpServerOptions o) {
  std::string host;
  int port = 0;
  FAULTLINE_RETURN_IF_ERROR(ParseListenAddress(o.flag, o.addr, &host, &port));
  std::unique_ptr<HttpServer> server(new HttpServer());
  server->impl_ = std::make_unique<Impl>();
  httplib::Server& http = server->impl_->http;
  if (const MetricsRegistry* registry = o.metrics) {
    http.Get("/metrics", [registry](const httplib::Request&, httplib::Response& res) {
      res.set_content(registry->RenderText(), "text/plain; version=0.0.4");
    });
  }
  if (const Health* health = o.health) {
    http.Get("/healthz", [health](const httplib::Request&, httplib::Response& res) {
      auto [status, body] = health->Liveness();
      res.status = status;
      res.set_content(body, "text/plain");
    });
    http.Get("/readyz", [health](const httplib::Request&, httplib::Response& res) {
      auto [status, body] = health->Readiness();
      res.status = status;
      res.set_content(body, "text/plain");
    });
  }
  for (HttpRoute& route : o.routes) {
    http.Get(route.pattern, [handler = std::move(route.handler)](const httplib::Request& req,
                                                                 httplib::Response& res) {
      HttpRequest r;
      for (size_t i = 1; i < req.matches.size(); ++i) r.matches.push_back(req.matches[i]);
      for (const auto& [k, v] : req.params) r.params[k] = v;
      const HttpReply reply = handler(r);
      res.status = reply.status;
      res.set_content(reply.body, reply.content_type);
    });
  }
  const int bound =
      port == 0 ? http.bind_to_any_port(host) : (http.bind_to_port(host, port) ? port : -1);
  if (bound <= 0) return Unavailable(o.flag + " '" + o.addr + "': cannot listen there");
  server->impl_->port = bound;
  server->impl_->thread = std::thread([&http] { http.listen_after_bind(); });
  return server;
}

HttpServer::~HttpServer() = default;

int HttpServer::port() const { return impl_->port; }

}  // namespace faultline
