// librdkafka, set up one way everywhere (library faultline::kafka; only code that speaks Kafka
// links it): a client from a list of settings whose errors name the setting, and a topic's
// partitions looked up with one answer for "absent", "no answer" and "there".
#pragma once

#include <librdkafka/rdkafka.h>

#include <string>
#include <utility>
#include <vector>

#include "faultline/common/status.h"

namespace faultline::kafka {

using Settings = std::vector<std::pair<std::string, std::string>>;

// A configuration with `settings` set in order. `what` names the client in errors
// ("Kafka consumer setting session.timeout.ms=x: …"). Errors: kInvalidArgument.
Result<rd_kafka_conf_t*> Config(const std::string& what, const Settings& settings);

// A client of `type` from `conf` (taken: destroyed on error too). Errors: kUnavailable
// ("cannot create the <what>: …").
Result<rd_kafka_t*> Create(rd_kafka_type_t type, const std::string& what, rd_kafka_conf_t* conf);

// Config, then Create.
Result<rd_kafka_t*> Create(rd_kafka_type_t type, const std::string& what,
                           const Settings& settings);

// The number of partitions of `topic`. Errors: kNotFound when the broker does not know the topic
// or it has no partitions yet; kUnavailable when the broker does not answer within `timeout_ms`
// or answers with another error. Messages name the topic and the broker's reason.
Result<int> PartitionCount(rd_kafka_t* rk, const std::string& topic, int timeout_ms);

}  // namespace faultline::kafka
