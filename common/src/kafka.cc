#include "faultline/common/kafka.h"

namespace faultline::kafka {

Result<rd_kafka_conf_t*> Config(const std::string& what, const Settings& settings) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char err[512];
  for (const auto& [k, v] : settings) {
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof(err)) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      return InvalidArgument(what + " setting " + k + "=" + v + ": " + err);
    }
  }
  return conf;
}

Result<rd_kafka_t*> Create(rd_kafka_type_t type, const std::string& what, rd_kafka_conf_t* conf) {
  char err[512];
  rd_kafka_t* rk = rd_kafka_new(type, conf, err, sizeof(err));  // owns conf when it succeeds
  if (!rk) {
    rd_kafka_conf_destroy(conf);
    return Unavailable("cannot create the " + what + ": " + err);
  }
  return rk;
}

Result<rd_kafka_t*> Create(rd_kafka_type_t type, const std::string& what,
                           const Settings& settings) {
  FAULTLINE_ASSIGN_OR_RETURN(rd_kafka_conf_t * conf, Config(what, settings));
  return Create(type, what, conf);
}

Result<int> PartitionCount(rd_kafka_t* rk, const std::string& topic, int timeout_ms) {
  const rd_kafka_metadata_t* md = nullptr;
  rd_kafka_topic_t* t = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
  const rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, t, &md, timeout_ms);
  rd_kafka_topic_destroy(t);
  if (e) return Unavailable("topic " + topic + ": " + rd_kafka_err2str(e));
  Result<int> out = NotFound("topic " + topic + ": no such topic");
  if (md->topic_cnt == 1) {
    const rd_kafka_metadata_topic_t& tm = md->topics[0];
    if (tm.err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
      out = NotFound("topic " + topic + ": " + rd_kafka_err2str(tm.err));
    } else if (tm.err) {
      out = Unavailable("topic " + topic + ": " + rd_kafka_err2str(tm.err));
    } else if (tm.partition_cnt == 0) {
      out = NotFound("topic " + topic + ": no partitions yet");
    } else {
      out = tm.partition_cnt;
    }
  }
  rd_kafka_metadata_destroy(md);
  return out;
}

}  // namespace faultline::kafka
