#include "faultline/stream/embedded_broker.h"

#include <arpa/inet.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

#include "faultline/common/kafka.h"
#include "faultline/common/log.h"

namespace faultline::stream {
namespace {

int ConnectTo(const std::string& host_port) {
  const size_t colon = host_port.rfind(':');
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(std::stoi(host_port.substr(colon + 1))));
  inet_pton(AF_INET, host_port.substr(0, colon).c_str(), &a.sin_addr);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd >= 0 && connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Copies bytes both ways between two sockets until either side closes or `stop` is set.
void Splice(int a, int b, const std::atomic<bool>& stop) {
  char buf[65536];
  pollfd fds[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
  while (!stop.load()) {
    if (poll(fds, 2, 200) < 0) break;
    for (int i = 0; i < 2; ++i) {
      if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t n = read(fds[i].fd, buf, sizeof(buf));
      if (n <= 0) return;
      for (ssize_t off = 0; off < n;) {
        ssize_t w = write(fds[1 - i].fd, buf + off, n - off);
        if (w <= 0) return;
        off += w;
      }
    }
  }
}

}  // namespace

struct EmbeddedBroker::Impl {
  rd_kafka_t* rk = nullptr;
  rd_kafka_mock_cluster_t* cluster = nullptr;
  std::string bootstrap;
  int listen_fd = -1;
  std::atomic<bool> stop{false};
  std::thread acceptor;
  std::vector<std::thread> forwards;

  ~Impl() {
    stop = true;
    if (listen_fd >= 0) shutdown(listen_fd, SHUT_RDWR);
    if (acceptor.joinable()) acceptor.join();
    for (auto& t : forwards) t.join();
    if (listen_fd >= 0) close(listen_fd);
    if (cluster) rd_kafka_mock_cluster_destroy(cluster);
    if (rk) rd_kafka_destroy(rk);
  }

  void Accept(std::string target) {
    while (!stop.load()) {
      pollfd p{listen_fd, POLLIN, 0};
      if (poll(&p, 1, 200) <= 0) continue;
      int client = accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0) continue;
      forwards.emplace_back([this, client, target] {
        int upstream = ConnectTo(target);
        if (upstream >= 0) {
          Splice(client, upstream, stop);
          close(upstream);
        }
        close(client);
      });
    }
  }
};

Result<std::unique_ptr<EmbeddedBroker>> EmbeddedBroker::Start(
    const EmbeddedBrokerOptions& options) {
  if (options.partitions < 1) {
    return InvalidArgument("--partitions " + std::to_string(options.partitions) +
                           ": must be at least 1");
  }
  if (options.port < 0 || options.port > 65535) {
    return InvalidArgument("--port " + std::to_string(options.port) + ": must be 0..65535");
  }
  std::unique_ptr<EmbeddedBroker> broker(new EmbeddedBroker());
  broker->impl_ = std::make_unique<Impl>();
  Impl& d = *broker->impl_;
  // The mock cluster lives in a client handle of its own.
  Result<rd_kafka_t*> rk = kafka::Create(RD_KAFKA_PRODUCER, "embedded broker's client",
                                         {{"log_level", "3"}});
  if (!rk.ok()) return Unavailable("embedded broker: " + rk.status().message());
  d.rk = *rk;
  d.cluster = rd_kafka_mock_cluster_new(d.rk, 1);
  if (!d.cluster)
    return Unavailable("embedded broker: librdkafka could not start its mock cluster");
  for (const std::string& topic : options.topics) {
    if (rd_kafka_resp_err_t e =
            rd_kafka_mock_topic_create(d.cluster, topic.c_str(), options.partitions, 1)) {
      return Unavailable("embedded broker: cannot create topic " + topic + ": " +
                         rd_kafka_err2str(e));
    }
  }
  const std::string mock = rd_kafka_mock_cluster_bootstraps(d.cluster);
  d.bootstrap = mock.substr(0, mock.find(','));
  if (options.port != 0) {
    d.listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(d.listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(options.port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(d.listen_fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
        listen(d.listen_fd, 64) != 0) {
      return Unavailable("--port " + std::to_string(options.port) +
                         ": cannot listen on 127.0.0.1: " + strerror(errno));
    }
    d.acceptor = std::thread([&d, target = d.bootstrap] { d.Accept(target); });
    d.bootstrap = "127.0.0.1:" + std::to_string(options.port);
  }
  return broker;
}

EmbeddedBroker::~EmbeddedBroker() = default;

const std::string& EmbeddedBroker::bootstrap() const { return impl_->bootstrap; }

void EmbeddedBroker::SetDown(bool down) {
  constexpr int32_t kBroker = 1;  // the cluster has one broker, id 1
  if (down) {
    rd_kafka_mock_broker_set_down(impl_->cluster, kBroker);
  } else {
    rd_kafka_mock_broker_set_up(impl_->cluster, kBroker);
  }
}

void EmbeddedBroker::FailNextRequests(int api_key, int count, int error) {
  std::vector<rd_kafka_resp_err_t> errors(static_cast<size_t>(count),
                                          static_cast<rd_kafka_resp_err_t>(error));
  rd_kafka_mock_push_request_errors_array(impl_->cluster, static_cast<int16_t>(api_key), errors.size(),
                                          errors.data());
}

}  // namespace faultline::stream
