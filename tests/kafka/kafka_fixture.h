// Shared pieces of the Kafka tests (*_kafkatest.cc): the real broker from
// SEGMENTS_TEST_KAFKA_BROKERS (scripts/test.sh starts one; a missing address
// fails the test), topics of their own per test, a producer, a reader, the
// committed offsets of a group (the fake user service is in support/).
// Header-only because the build compiles only *_kafkatest.cc files here.
#pragma once

#include <absl/container/flat_hash_map.h>
#include <absl/random/random.h>
#include <absl/strings/str_cat.h>
#include <absl/synchronization/mutex.h>
#include <absl/time/clock.h>
#include <grpcpp/grpcpp.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafkacpp.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "support/fake_user_service.h"

namespace segments::testing {

inline std::string KafkaBrokers() {
  const char* brokers = std::getenv("SEGMENTS_TEST_KAFKA_BROKERS");
  if (brokers == nullptr || *brokers == '\0') {
    FAIL("SEGMENTS_TEST_KAFKA_BROKERS is not set: start a broker with scripts/kafka.sh start (scripts/test.sh does)");
  }
  return brokers;
}

// A name no other test run uses, e.g. for topics and groups.
inline std::string UniqueName(const std::string& prefix) {
  static absl::BitGen bits;
  return absl::StrCat(prefix, "-", absl::ToUnixMillis(absl::Now()), "-", absl::Uniform<uint32_t>(bits));
}

// Creates `topic` with `partitions` partitions through the admin API and
// waits until it is created.
inline void CreateTopic(const std::string& topic, int partitions) {
  char error[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", KafkaBrokers().c_str(), error, sizeof error);
  rd_kafka_t* admin = rd_kafka_new(RD_KAFKA_PRODUCER, conf, error, sizeof error);
  if (admin == nullptr) throw std::runtime_error(std::string("kafka admin: ") + error);
  rd_kafka_NewTopic_t* new_topic = rd_kafka_NewTopic_new(topic.c_str(), partitions, 1, error, sizeof error);
  rd_kafka_queue_t* queue = rd_kafka_queue_new(admin);
  rd_kafka_CreateTopics(admin, &new_topic, 1, nullptr, queue);
  rd_kafka_event_t* event = rd_kafka_queue_poll(queue, 30000);
  std::string problem;
  if (event == nullptr) {
    problem = "no answer in 30 s";
  } else if (rd_kafka_event_error(event) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    problem = rd_kafka_event_error_string(event);
  } else {
    size_t count = 0;
    const rd_kafka_topic_result_t** results =
        rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(event), &count);
    for (size_t i = 0; i < count; ++i) {
      if (rd_kafka_topic_result_error(results[i]) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        problem = rd_kafka_topic_result_error_string(results[i]);
      }
    }
  }
  if (event != nullptr) rd_kafka_event_destroy(event);
  rd_kafka_queue_destroy(queue);
  rd_kafka_NewTopic_destroy(new_topic);
  rd_kafka_destroy(admin);
  if (!problem.empty()) throw std::runtime_error("create topic " + topic + ": " + problem);
}

inline std::unique_ptr<RdKafka::Conf> BaseConf() {
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  std::string error;
  conf->set("bootstrap.servers", KafkaBrokers(), error);
  return conf;
}

// Produces messages and waits until the broker has them.
class TestProducer {
 public:
  TestProducer() {
    auto conf = BaseConf();
    std::string error;
    conf->set("enable.idempotence", "true", error);
    producer_.reset(RdKafka::Producer::create(conf.get(), error));
    if (!producer_) throw std::runtime_error("test producer: " + error);
  }

  // Sends without waiting; `partition` -1 lets the key choose.
  void Send(const std::string& topic, const std::string& key, const std::string& value, int32_t partition = -1) {
    RdKafka::ErrorCode err = producer_->produce(topic, partition < 0 ? RdKafka::Topic::PARTITION_UA : partition,
                                                RdKafka::Producer::RK_MSG_COPY, const_cast<char*>(value.data()),
                                                value.size(), key.data(), key.size(), 0, nullptr);
    if (err != RdKafka::ERR_NO_ERROR) throw std::runtime_error("produce: " + RdKafka::err2str(err));
  }

  // The value of a user event, as the user service writes it.
  static std::string EventValue(const std::string& user) { return R"({"userID":")" + user + R"("})"; }

  void SendEvent(const std::string& topic, const std::string& user) { Send(topic, user, EventValue(user)); }

  void Flush() {
    producer_->flush(30000);
    if (producer_->outq_len() > 0) throw std::runtime_error("test producer: messages not delivered in 30 s");
  }

 private:
  std::unique_ptr<RdKafka::Producer> producer_;
};

struct ReadMessage {
  int32_t partition = 0;
  int64_t offset = 0;
  std::string key;
  std::string value;
  std::map<std::string, std::string> headers;
};

// Reads every partition of `topic` from the beginning, without a group,
// until `count` messages arrived or `timeout` passed.
inline std::vector<ReadMessage> ReadTopic(const std::string& topic, int partitions, size_t count,
                                          absl::Duration timeout) {
  auto conf = BaseConf();
  std::string error;
  conf->set("group.id", UniqueName("reader"), error);
  conf->set("enable.auto.commit", "false", error);
  std::unique_ptr<RdKafka::KafkaConsumer> reader(RdKafka::KafkaConsumer::create(conf.get(), error));
  if (!reader) throw std::runtime_error("reader: " + error);
  std::vector<RdKafka::TopicPartition*> assignment;
  for (int p = 0; p < partitions; ++p) {
    assignment.push_back(RdKafka::TopicPartition::create(topic, p, RdKafka::Topic::OFFSET_BEGINNING));
  }
  reader->assign(assignment);
  RdKafka::TopicPartition::destroy(assignment);
  std::vector<ReadMessage> out;
  const absl::Time until = absl::Now() + timeout;
  while (out.size() < count && absl::Now() < until) {
    std::unique_ptr<RdKafka::Message> m(reader->consume(100));
    if (m->err() != RdKafka::ERR_NO_ERROR) continue;
    ReadMessage r;
    r.partition = m->partition();
    r.offset = m->offset();
    if (m->key()) r.key = *m->key();
    r.value.assign(static_cast<const char*>(m->payload()), m->len());
    if (RdKafka::Headers* headers = m->headers()) {
      for (const auto& h : headers->get_all())
        r.headers[h.key()] = std::string(static_cast<const char*>(h.value()), h.value_size());
    }
    out.push_back(std::move(r));
  }
  reader->close();
  return out;
}

// The offsets `group` committed on `topic`, by partition (-1001: none).
inline std::map<int32_t, int64_t> CommittedOffsets(const std::string& group, const std::string& topic, int partitions) {
  auto conf = BaseConf();
  std::string error;
  conf->set("group.id", group, error);
  std::unique_ptr<RdKafka::KafkaConsumer> probe(RdKafka::KafkaConsumer::create(conf.get(), error));
  if (!probe) throw std::runtime_error("offset probe: " + error);
  std::vector<RdKafka::TopicPartition*> query;
  for (int p = 0; p < partitions; ++p) query.push_back(RdKafka::TopicPartition::create(topic, p));
  RdKafka::ErrorCode err = probe->committed(query, 10000);
  std::map<int32_t, int64_t> out;
  for (const RdKafka::TopicPartition* p : query) out[p->partition()] = p->offset();
  RdKafka::TopicPartition::destroy(query);
  probe->close();
  if (err != RdKafka::ERR_NO_ERROR) throw std::runtime_error("committed offsets: " + RdKafka::err2str(err));
  return out;
}

// Sum of committed offsets over partitions (none committed counts as 0).
inline int64_t CommittedTotal(const std::string& group, const std::string& topic, int partitions) {
  int64_t total = 0;
  for (const auto& [partition, offset] : CommittedOffsets(group, topic, partitions)) total += offset < 0 ? 0 : offset;
  return total;
}

}  // namespace segments::testing
