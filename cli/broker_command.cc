#include <chrono>
#include <iostream>
#include <thread>

#include "commands.h"
#include "faultline/stream/embedded_broker.h"

namespace faultline::cli {

Runner RegisterBroker(CLI::App& app) {
  auto opts = std::make_shared<stream::EmbeddedBrokerOptions>();
  CLI::App* sub = app.add_subcommand("broker", "Run the embedded Kafka-protocol broker on 127.0.0.1");
  sub->add_option("--port", opts->port, "Bootstrap port (0: any free port)")->check(CLI::Range(0, 65535))->capture_default_str();
  sub->add_option("--partitions", opts->partitions, "Partitions per topic")->check(CLI::Range(1, 1024))->capture_default_str();
  auto extra = std::make_shared<std::vector<std::string>>();
  sub->add_option("--topic", *extra,
                  "Another topic to create (repeatable), e.g. a second changelog topic");
  return [opts, extra] {
    opts->topics.insert(opts->topics.end(), extra->begin(), extra->end());
    auto broker = stream::EmbeddedBroker::Start(*opts);
    if (!broker.ok()) {
      std::cerr << "faultline broker: " << broker.status().message() << "\n";
      return 1;
    }
    std::cout << "bootstrap=" << (*broker)->bootstrap() << std::endl;
    while (!g_stop.load()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    return 0;
  };
}

}  // namespace faultline::cli
