// kafka_drain: the raw-consumption baseline for bench/stream_throughput.sh. Reads every partition
// of a topic from the beginning to its end with librdkafka (assigned, no group), touching each
// message's bytes and discarding them, and prints messages, bytes, and the wall and CPU seconds of
// the whole process (start-up included, as the stream processor's /status counts). Gives up
// (exit 3, naming how far it got) after DEADLINE_S seconds (default 300) without reaching the end.
//   kafka_drain BROKERS TOPIC [DEADLINE_S]
#include <librdkafka/rdkafka.h>

#include "faultline/common/kafka.h"
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {
double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}
}  // namespace

int main(int argc, char** argv) {
  // Like for like with the stream processor's figures: the whole process, start-up included.
  const auto t0 = std::chrono::steady_clock::now();
  if (argc != 3 && argc != 4) {
    std::fprintf(stderr, "usage: kafka_drain BROKERS TOPIC [DEADLINE_S]\n");
    return 2;
  }
  const double deadline_s = argc == 4 ? std::atof(argv[3]) : 300;
  if (!(deadline_s > 0)) {
    std::fprintf(stderr, "kafka_drain: DEADLINE_S '%s': expected a positive number\n", argv[3]);
    return 2;
  }
  auto client = faultline::kafka::Create(RD_KAFKA_CONSUMER, "Kafka consumer",
                                         {{"bootstrap.servers", argv[1]},
                                          {"group.id", "kafka-drain"},
                                          {"enable.auto.commit", "false"},
                                          {"enable.partition.eof", "true"}});
  if (!client.ok()) {
    std::fprintf(stderr, "kafka_drain: %s\n", client.status().message().c_str());
    return 2;
  }
  rd_kafka_t* rk = *client;
  auto count = faultline::kafka::PartitionCount(rk, argv[2], 10000);
  if (!count.ok()) {
    std::fprintf(stderr, "kafka_drain: %s\n", count.status().message().c_str());
    return 1;
  }
  const int partitions = *count;
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(partitions);
  for (int p = 0; p < partitions; ++p) {
    rd_kafka_topic_partition_list_add(list, argv[2], p)->offset = RD_KAFKA_OFFSET_BEGINNING;
  }
  rd_kafka_poll_set_consumer(rk);
  rd_kafka_assign(rk, list);
  rd_kafka_topic_partition_list_destroy(list);
  uint64_t messages = 0, bytes = 0, checksum = 0;
  int at_end = 0;
  const auto deadline = t0 + std::chrono::duration<double>(deadline_s);
  while (at_end < partitions) {
    if (std::chrono::steady_clock::now() >= deadline) {
      std::fprintf(stderr, "kafka_drain: %d of %d partitions at their end after %.0f s (%llu messages)\n",
                   at_end, partitions, deadline_s, (unsigned long long)messages);
      rd_kafka_destroy(rk);
      return 3;
    }
    rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, 1000);
    if (!m) continue;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      at_end++;
    } else if (!m->err) {
      messages++;
      bytes += m->len;
      const auto* b = static_cast<const unsigned char*>(m->payload);
      for (size_t i = 0; i < m->len; i += 64) checksum += b[i];  // touch the bytes
    }
    rd_kafka_message_destroy(m);
  }
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double cpu = CpuSeconds();
  std::printf("messages=%llu bytes=%llu wall_s=%.3f cpu_s=%.3f checksum=%llu\n",
              (unsigned long long)messages, (unsigned long long)bytes, wall, cpu,
              (unsigned long long)checksum);
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  return 0;
}
