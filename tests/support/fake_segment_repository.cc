#include "support/fake_segment_repository.h"

#include <algorithm>

#include "common/status_macros.h"

namespace segments::testing {

using domain::Segment;
using domain::SegmentId;
using domain::SegmentTask;

const Segment* FakeState::FindLive(const std::string& slug) const {
  for (const auto& [id, s] : segments) {
    if (s.slug == slug && !deleted_segments.contains(id)) return &s;
  }
  return nullptr;
}

absl::StatusOr<Segment> FakeSegmentRepository::Insert(const domain::NewSegment& fresh, absl::Time now) {
  RETURN_IF_ERROR(controls_.failure);
  if (s_.FindLive(fresh.slug)) return absl::AlreadyExistsError("slug taken");
  Segment s{s_.next_segment_id++, fresh.slug, fresh.percent_hundredths, fresh.description,
            fresh.salt,           now,        fresh.auto_options};
  auto slugs_of = [&](const std::vector<SegmentId>& ids) {
    std::vector<std::string> slugs;
    for (SegmentId id : ids) slugs.push_back(s_.segments.at(id).slug);
    std::sort(slugs.begin(), slugs.end());
    return slugs;
  };
  s.include_slugs = slugs_of(s.auto_options.include_ids);
  s.exclude_slugs = slugs_of(s.auto_options.exclude_ids);
  s_.segments[s.id] = s;
  return s;
}

absl::StatusOr<std::optional<Segment>> FakeSegmentRepository::MarkDeleted(const std::string& slug, absl::Time) {
  RETURN_IF_ERROR(controls_.failure);
  const Segment* s = s_.FindLive(slug);
  if (s == nullptr) return std::nullopt;
  s_.deleted_segments.insert(s->id);
  return *s;
}

absl::StatusOr<std::vector<Segment>> FakeSegmentRepository::LockLive(const std::vector<std::string>& slugs) {
  RETURN_IF_ERROR(controls_.failure);
  std::vector<Segment> out;
  for (const auto& slug : slugs) {
    if (const Segment* s = s_.FindLive(slug)) out.push_back(*s);
  }
  controls_.shared_segment_locks += static_cast<int>(out.size());
  return out;
}

absl::StatusOr<std::optional<Segment>> FakeSegmentRepository::LockLiveExclusively(const std::string& slug) {
  RETURN_IF_ERROR(controls_.failure);
  const Segment* s = s_.FindLive(slug);
  if (s == nullptr) return std::nullopt;
  ++controls_.exclusive_segment_locks;
  return *s;
}

absl::StatusOr<std::vector<std::string>> FakeSegmentRepository::Referring(SegmentId id) {
  RETURN_IF_ERROR(controls_.failure);
  std::vector<std::string> out;
  for (const auto& [other, s] : s_.segments) {
    const auto& o = s.auto_options;
    if (s_.deleted_segments.contains(other)) continue;
    if (std::count(o.include_ids.begin(), o.include_ids.end(), id) +
            std::count(o.exclude_ids.begin(), o.exclude_ids.end(), id) >
        0) {
      out.push_back(s.slug);
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

absl::StatusOr<std::vector<Segment>> FakeSegmentRepository::Automatic() {
  RETURN_IF_ERROR(controls_.failure);
  std::vector<Segment> out;
  for (const auto& [id, s] : s_.segments) {
    if (!s_.deleted_segments.contains(id) && s.percent_hundredths > 0) out.push_back(s);
  }
  return out;
}

absl::Status FakeSegmentRepository::SetPercent(SegmentId id, int32_t percent) {
  RETURN_IF_ERROR(controls_.failure);
  s_.segments.at(id).percent_hundredths = percent;
  return absl::OkStatus();
}

absl::StatusOr<int64_t> FakeSegmentRepository::StartTask(const SegmentTask& task, absl::Time now) {
  RETURN_IF_ERROR(controls_.failure);
  for (const auto& [id, t] : s_.tasks) {
    if (t.segment_id == task.segment_id && !t.finished) return absl::InternalError("the segment has a task already");
  }
  SegmentTask stored = task;
  stored.id = s_.next_task_id++;
  stored.after_user.clear();
  stored.last_user.reset();
  stored.count = 0;
  stored.finished = false;
  s_.tasks[stored.id] = stored;
  s_.task_heartbeats[stored.id] = now;
  return stored.id;
}

absl::StatusOr<std::optional<SegmentTask>> FakeSegmentRepository::LockUnfinishedTask(SegmentId segment) {
  RETURN_IF_ERROR(controls_.failure);
  for (const auto& [id, t] : s_.tasks) {
    if (t.segment_id == segment && !t.finished) return t;
  }
  return std::nullopt;
}

absl::StatusOr<std::optional<SegmentTask>> FakeSegmentRepository::LockTask(int64_t id) {
  RETURN_IF_ERROR(controls_.failure);
  ++controls_.task_chunks;
  auto it = s_.tasks.find(id);
  if (it == s_.tasks.end()) return std::nullopt;
  return it->second;
}

absl::StatusOr<std::optional<SegmentTask>> FakeSegmentRepository::Task(int64_t id) {
  RETURN_IF_ERROR(controls_.failure);
  auto it = s_.tasks.find(id);
  if (it == s_.tasks.end()) return std::nullopt;
  return it->second;
}

absl::StatusOr<std::optional<Segment>> FakeSegmentRepository::SegmentOfTask(int64_t task) {
  RETURN_IF_ERROR(controls_.failure);
  auto it = s_.tasks.find(task);
  if (it == s_.tasks.end()) return std::nullopt;
  return s_.segments.at(it->second.segment_id);
}

absl::Status FakeSegmentRepository::SetTaskLastUser(int64_t task, const std::string& last_user) {
  RETURN_IF_ERROR(controls_.failure);
  s_.tasks.at(task).last_user = last_user;
  return absl::OkStatus();
}

absl::Status FakeSegmentRepository::RecordChunk(int64_t task, const std::string& after_user, int64_t count,
                                                absl::Time now) {
  RETURN_IF_ERROR(controls_.failure);
  SegmentTask& t = s_.tasks.at(task);
  t.after_user = after_user;
  t.count += count;
  s_.task_heartbeats[task] = now;
  return absl::OkStatus();
}

absl::Status FakeSegmentRepository::FinishTask(int64_t task, absl::Time now) {
  RETURN_IF_ERROR(controls_.failure);
  s_.tasks.at(task).finished = true;
  s_.task_heartbeats[task] = now;
  return absl::OkStatus();
}

absl::StatusOr<std::vector<SegmentTask>> FakeSegmentRepository::StaleTasks(absl::Time before, int limit) {
  RETURN_IF_ERROR(controls_.failure);
  std::vector<SegmentTask> out;
  for (const auto& [id, t] : s_.tasks) {
    if (!t.finished && s_.task_heartbeats.at(id) < before && static_cast<int>(out.size()) < limit) out.push_back(t);
  }
  return out;
}

absl::StatusOr<std::optional<std::pair<Segment, int64_t>>> FakeSegmentQueries::FindWithMemberCount(
    const std::string& slug, absl::Time now) {
  RETURN_IF_ERROR(controls_.failure);
  const Segment* segment = s_.FindLive(slug);
  if (segment == nullptr) return std::nullopt;
  int64_t members = 0;
  for (const auto& [key, m] : s_.memberships) members += key.second == segment->id && m.ActiveAt(now) ? 1 : 0;
  return std::make_pair(*segment, members);
}

absl::StatusOr<std::optional<Segment>> FakeSegmentQueries::Find(const std::string& slug) {
  RETURN_IF_ERROR(controls_.failure);
  const Segment* segment = s_.FindLive(slug);
  if (segment == nullptr) return std::nullopt;
  return *segment;
}

absl::StatusOr<std::vector<Segment>> FakeSegmentQueries::List(const std::string& after_slug, int limit) {
  RETURN_IF_ERROR(controls_.failure);
  std::vector<Segment> out;
  for (const auto& [id, segment] : s_.segments) {
    if (!s_.deleted_segments.contains(id) && segment.slug > after_slug) out.push_back(segment);
  }
  std::sort(out.begin(), out.end(), [](const Segment& a, const Segment& b) { return a.slug < b.slug; });
  if (out.size() > static_cast<size_t>(limit)) out.resize(static_cast<size_t>(limit));
  return out;
}

}  // namespace segments::testing
