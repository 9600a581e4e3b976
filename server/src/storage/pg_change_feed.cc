#include "storage/pg_change_feed.h"

#include <absl/strings/numbers.h>
#include <absl/strings/str_join.h>
#include <absl/strings/str_split.h>
#include <absl/time/clock.h>
#include <fmt/format.h>
#include <poll.h>

#include <cstring>
#include <limits>

#include "common/log.h"
#include "common/status_macros.h"
#include "common/string_views.h"

namespace segments::storage {
namespace {

using readmodel::FeedChanges;
using readmodel::HeldMembership;
using readmodel::kNeverExpires;

constexpr char kApplicationName[] = "segments-read-model";

// Binary COPY (the PostgreSQL manual, "COPY", binary format): a header, then
// per row an int16 field count and per field an int32 length (-1: NULL)
// and that many bytes; an int16 -1 ends the data. Integers are big-endian.
constexpr std::string_view kCopySignature{"PGCOPY\n\377\r\n\0", 11};
// timestamptz counts microseconds from 2000-01-01; Unix time from 1970.
constexpr int64_t kUnixMicrosAt2000 = 946'684'800'000'000;

class BinaryReader {
 public:
  explicit BinaryReader(std::string_view bytes) : bytes_(bytes) {}
  bool empty() const { return bytes_.empty(); }
  bool Skip(size_t n) {
    if (bytes_.size() < n) return false;
    bytes_.remove_prefix(n);
    return true;
  }
  template <typename T>
  bool Int(T& out) {
    if (bytes_.size() < sizeof(T)) return false;
    std::make_unsigned_t<T> value = 0;
    for (size_t i = 0; i < sizeof(T); ++i)
      value = static_cast<decltype(value)>((value << 8) | static_cast<uint8_t>(bytes_[i]));
    out = static_cast<T>(value);
    bytes_.remove_prefix(sizeof(T));
    return true;
  }
  // One field: nullopt for NULL; false if the bytes end early.
  bool Field(std::optional<std::string_view>& out) {
    int32_t length = 0;
    if (!Int(length)) return false;
    if (length < 0) {
      out.reset();
      return true;
    }
    if (bytes_.size() < static_cast<size_t>(length)) return false;
    out = bytes_.substr(0, static_cast<size_t>(length));
    bytes_.remove_prefix(static_cast<size_t>(length));
    return true;
  }

 private:
  std::string_view bytes_;
};

absl::Status Malformed(std::string_view what) {
  return absl::InternalError(fmt::format("malformed binary COPY data from the database: {}", what));
}

int64_t BigEndian64(std::string_view bytes) {
  uint64_t value = 0;
  for (char byte : bytes) value = (value << 8) | static_cast<uint8_t>(byte);
  return static_cast<int64_t>(value);
}

// A deadline as the table holds it: 'infinity' never comes, '-infinity' has
// always passed.
int64_t UnixMicrosOf(int64_t pg_micros) {
  if (pg_micros == std::numeric_limits<int64_t>::max()) return kNeverExpires;
  if (pg_micros == std::numeric_limits<int64_t>::min()) return std::numeric_limits<int64_t>::min();
  if (pg_micros > kNeverExpires - kUnixMicrosAt2000) return kNeverExpires - 1;
  return pg_micros + kUnixMicrosAt2000;
}

// Ids are canonical text (domain user_id), so they can stand in SQL as they are.
std::string UserArrayLiteral(const std::vector<domain::UserId>& users) {
  std::string out = "'{";
  for (size_t i = 0; i < users.size(); ++i) {
    if (i > 0) out += ',';
    users[i].AppendTo(out);
  }
  out += "}'::user_id[]";
  return out;
}

// Users from..to of a segment, both included: a range note.
struct SegmentRange {
  uint32_t segment;
  domain::UserId from;
  domain::UserId to;
};

std::string RangeValues(const std::vector<SegmentRange>& ranges) {
  std::string out;
  for (const SegmentRange& r : ranges) {
    if (!out.empty()) out += ',';
    out += fmt::format("({}::int8,'", r.segment);
    r.from.AppendTo(out);
    out += "'::user_id,'";
    r.to.AppendTo(out);
    out += "'::user_id)";
  }
  return out;
}

std::string SegmentArrayLiteral(const std::vector<uint32_t>& segments) {
  return fmt::format("'{{{}}}'::int8[]", absl::StrJoin(segments, ","));
}

// Live segments' memberships only: those of a deleted segment end without
// notes (db/schema.sql, migration 9), and the model drops the segment whole
// when it leaves the catalog.
constexpr char kSelectMemberships[] =
    "SELECT m.user_id, m.segment_id, m.expires_at FROM memberships m "
    "JOIN segments s ON s.id = m.segment_id AND s.deleted_at IS NULL";

// The change notes committed after `position` (not visible in it), with the
// snapshot they were read in and the server's start, which the first row
// carries. The first statement of a REPEATABLE READ transaction, whose
// snapshot it fixes.
const Statement kChangesSince{
    "read_model_changes_since",
    "SELECT pg_current_snapshot()::text, pg_postmaster_start_time()::text, NULL::\"char\", NULL::text, NULL::int8, "
    "NULL::text "
    "UNION ALL SELECT DISTINCT NULL::text, NULL::text, kind, user_id::text, segment_id, last_user_id::text "
    "FROM membership_changes WHERE xid >= $1::xid8 OR xid = ANY($2::xid8[])"};
const Statement kPruneChanges{"read_model_prune_changes", "DELETE FROM membership_changes WHERE xid < $1::xid8"};

}  // namespace

std::optional<PgSnapshot> PgSnapshot::Parse(std::string_view text) {
  std::vector<absl::string_view> parts = absl::StrSplit(Absl(text), ':');
  if (parts.size() != 3) return std::nullopt;
  PgSnapshot snapshot;
  if (!absl::SimpleAtoi(parts[0], &snapshot.xmin) || !absl::SimpleAtoi(parts[1], &snapshot.xmax)) return std::nullopt;
  if (!parts[2].empty()) {
    for (absl::string_view xid : absl::StrSplit(parts[2], ',')) {
      uint64_t value = 0;
      if (!absl::SimpleAtoi(xid, &value)) return std::nullopt;
      snapshot.xip.push_back(value);
    }
  }
  return snapshot;
}

PgChangeFeed::PgChangeFeed(std::string conninfo, std::vector<std::pair<std::string, std::string>> defaults)
    : conninfo_(std::move(conninfo)), defaults_([&] {
        for (auto& [key, value] : defaults) {
          if (key == "application_name") value = kApplicationName;
        }
        // A dead link fails the look in seconds, not after TCP gives up.
        defaults.emplace_back("tcp_user_timeout", "5000");
        return std::move(defaults);
      }()) {}

absl::Status PgChangeFeed::Connect() {
  conn_.reset();
  ASSIGN_OR_RETURN(conn_, PgConnection::Open(conninfo_, defaults_));
  absl::Status listening = conn_->ExecuteSimple(fmt::format("LISTEN {}", kChannel).c_str()).status();
  if (!listening.ok()) conn_.reset();
  return listening;
}

void PgChangeFeed::Disconnect() { conn_.reset(); }

absl::StatusOr<PgConnection*> PgChangeFeed::Connection() {
  if (conn_ == nullptr || conn_->Broken())
    return absl::UnavailableError("the read model's database connection is down");
  return conn_.get();
}

absl::StatusOr<bool> PgChangeFeed::CanContinue() {
  if (!position_) return false;
  ASSIGN_OR_RETURN(PgConnection * conn, Connection());
  ASSIGN_OR_RETURN(PgResult r, conn->ExecuteSimple("SELECT pg_postmaster_start_time()::text"));
  return r.Rows() == 1 && r.Get(0, 0) == server_started_;
}

absl::Status PgChangeFeed::CopyMemberships(const std::string& select,
                                           absl::FunctionRef<void(const domain::UserId&, HeldMembership)> membership) {
  ASSIGN_OR_RETURN(PgConnection * conn, Connection());
  bool header_seen = false;
  bool ended = false;
  // Rows come grouped by user: each id is parsed once, not once per row.
  std::string last_text;
  std::optional<domain::UserId> last_id;
  return conn->CopyOut(
      fmt::format("COPY ({}) TO STDOUT (FORMAT binary)", select),
      [&](std::string_view message) -> absl::Status {
        BinaryReader in(message);
        if (!header_seen) {
          // The header comes first, in the first message.
          if (message.substr(0, kCopySignature.size()) != kCopySignature) return Malformed("no signature");
          int32_t extension = 0;
          if (!in.Skip(kCopySignature.size() + 4) || !in.Int(extension) || extension < 0 ||
              !in.Skip(static_cast<size_t>(extension))) {
            return Malformed("short header");
          }
          header_seen = true;
        }
        while (!in.empty()) {
          int16_t fields = 0;
          if (ended || !in.Int(fields)) return Malformed("data after the end");
          if (fields == -1) {
            ended = true;
            continue;
          }
          std::optional<std::string_view> user, segment, expires;
          if (fields != 3 || !in.Field(user) || !in.Field(segment) || !in.Field(expires)) {
            return Malformed("a row is not (user_id, segment_id, expires_at)");
          }
          if (!user || !segment || segment->size() != 8 || (expires && expires->size() != 8)) {
            return Malformed("unexpected NULL or width");
          }
          if (!last_id || *user != last_text) {
            absl::StatusOr<domain::UserId> id = domain::UserId::Parse(*user);
            if (!id.ok()) return Malformed("a user id is not canonical");
            last_id.emplace(*id);
            last_text.assign(user->data(), user->size());
          }
          const int64_t segment_id = BigEndian64(*segment);
          if (segment_id < 0 || segment_id > std::numeric_limits<uint32_t>::max()) {
            return absl::FailedPreconditionError(
                fmt::format("segment id {} is beyond the read model's 32-bit ids", segment_id));
          }
          membership(*last_id, HeldMembership{static_cast<uint32_t>(segment_id),
                                              expires ? UnixMicrosOf(BigEndian64(*expires)) : kNeverExpires});
        }
        return absl::OkStatus();
      },
      "read model copy");
}

absl::StatusOr<readmodel::SegmentCatalog> PgChangeFeed::FetchCatalog() {
  ASSIGN_OR_RETURN(PgConnection * conn, Connection());
  ASSIGN_OR_RETURN(PgResult r, conn->ExecuteSimple("SELECT id, slug FROM segments WHERE deleted_at IS NULL"));
  readmodel::SegmentCatalog catalog;
  catalog.reserve(static_cast<size_t>(r.Rows()));
  for (int i = 0; i < r.Rows(); ++i) {
    uint32_t id = 0;
    if (!absl::SimpleAtoi(Absl(r.Get(i, 0)), &id)) {
      return absl::FailedPreconditionError(
          fmt::format("segment id {} is beyond the read model's 32-bit ids", r.Get(i, 0)));
    }
    catalog.emplace_back(id, std::string(r.Get(i, 1)));
  }
  return catalog;
}

void PgChangeFeed::Remember(const PgSnapshot& snapshot) {
  const absl::Time now = absl::Now();
  if (past_xmins_.empty() || now - past_xmins_.back().first >= absl::Seconds(1)) {
    past_xmins_.emplace_back(now, snapshot.xmin);
  }
  position_ = snapshot;
}

absl::StatusOr<readmodel::SegmentCatalog> PgChangeFeed::LoadAll(
    absl::FunctionRef<void(const domain::UserId&, HeldMembership)> membership) {
  ASSIGN_OR_RETURN(PgConnection * conn, Connection());
  RETURN_IF_ERROR(conn->ExecuteSimple("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY").status());
  auto load = [&]() -> absl::StatusOr<readmodel::SegmentCatalog> {
    ASSIGN_OR_RETURN(PgResult r,
                     conn->ExecuteSimple("SELECT pg_current_snapshot()::text, pg_postmaster_start_time()::text"));
    std::optional<PgSnapshot> snapshot = r.Rows() == 1 ? PgSnapshot::Parse(r.Get(0, 0)) : std::nullopt;
    if (!snapshot) return absl::InternalError("unreadable snapshot from the database");
    std::string started(r.Get(0, 1));
    RETURN_IF_ERROR(CopyMemberships(fmt::format("{} ORDER BY m.user_id", kSelectMemberships), membership));
    ASSIGN_OR_RETURN(readmodel::SegmentCatalog catalog, FetchCatalog());
    RETURN_IF_ERROR(conn->ExecuteSimple("COMMIT").status());
    past_xmins_.clear();
    Remember(*snapshot);
    server_started_ = std::move(started);
    return catalog;
  };
  absl::StatusOr<readmodel::SegmentCatalog> loaded = load();
  if (!loaded.ok() && !conn->Broken()) (void)conn->ExecuteSimple("ROLLBACK");
  return loaded;
}

absl::StatusOr<FeedChanges> PgChangeFeed::Poll() {
  if (!position_) return absl::FailedPreconditionError("the change feed has no position: load everything first");
  ASSIGN_OR_RETURN(PgConnection * conn, Connection());
  RETURN_IF_ERROR(conn->ExecuteSimple("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY").status());
  auto poll = [&]() -> absl::StatusOr<FeedChanges> {
    PgParams params;
    params.Text(std::to_string(position_->xmax)).Text(fmt::format("{{{}}}", absl::StrJoin(position_->xip, ",")));
    ASSIGN_OR_RETURN(PgResult r, conn->Execute(kChangesSince, params));
    std::optional<PgSnapshot> snapshot;
    FeedChanges changes;
    bool catalog_changed = false;
    std::vector<SegmentRange> ranges;
    for (int i = 0; i < r.Rows(); ++i) {
      if (!r.IsNull(i, 0)) {
        snapshot = PgSnapshot::Parse(r.Get(i, 0));
        if (r.Get(i, 1) != server_started_) changes.reload_all = true;
        continue;
      }
      switch (r.Get(i, 2).empty() ? '\0' : r.Get(i, 2)[0]) {
        case 'u': {
          absl::StatusOr<domain::UserId> user = domain::UserId::Parse(r.Get(i, 3));
          if (!user.ok()) return Malformed("a change note's user id is not canonical");
          changes.users.push_back(*user);
          break;
        }
        case 's': {
          uint32_t segment = 0;
          if (!absl::SimpleAtoi(Absl(r.Get(i, 4)), &segment)) return Malformed("a change note's segment id");
          changes.segments.push_back(segment);
          break;
        }
        case 'r': {
          uint32_t segment = 0;
          absl::StatusOr<domain::UserId> from = domain::UserId::Parse(r.Get(i, 3));
          absl::StatusOr<domain::UserId> to = domain::UserId::Parse(r.Get(i, 5));
          if (!absl::SimpleAtoi(Absl(r.Get(i, 4)), &segment) || !from.ok() || !to.ok()) {
            return Malformed("a change note's range");
          }
          ranges.push_back({segment, *std::move(from), *std::move(to)});
          break;
        }
        case 'c':
          catalog_changed = true;
          break;
        default:  // 'a', or a kind this version does not know: load everything
          changes.reload_all = true;
      }
    }
    if (!snapshot) return absl::InternalError("unreadable snapshot from the database");
    if (changes.reload_all) {
      changes = FeedChanges{};
      changes.reload_all = true;
    } else {
      if (!changes.users.empty()) {
        // Joined to the ids rather than `user_id = ANY(...)`, which the
        // planner answers with a parallel scan of every membership once the
        // list is long (a sync of user events notes up to 10,000): an index
        // lookup per user instead, whatever the size of the table.
        RETURN_IF_ERROR(CopyMemberships(
            fmt::format("{} JOIN unnest({}) AS u(id) ON m.user_id = u.id ORDER BY m.user_id", kSelectMemberships,
                        UserArrayLiteral(changes.users)),
            [&](const domain::UserId& user, HeldMembership m) { changes.user_rows.emplace_back(user, m); }));
      }
      if (!ranges.empty()) {
        // One index range scan per range (memberships_segment_user_idx).
        changes.has_ranges = true;
        RETURN_IF_ERROR(CopyMemberships(
            fmt::format("{} JOIN (VALUES {}) AS r(segment_id, lo, hi) ON m.segment_id = r.segment_id "
                        "AND m.user_id >= r.lo AND m.user_id <= r.hi",
                        kSelectMemberships, RangeValues(ranges)),
            [&](const domain::UserId& user, HeldMembership m) { changes.range_rows.emplace_back(user, m); }));
      }
      if (!changes.segments.empty()) {
        RETURN_IF_ERROR(CopyMemberships(
            fmt::format("{} WHERE m.segment_id = ANY({})", kSelectMemberships, SegmentArrayLiteral(changes.segments)),
            [&](const domain::UserId& user, HeldMembership m) { changes.segment_rows.emplace_back(user, m); }));
      }
      if (catalog_changed) {
        ASSIGN_OR_RETURN(changes.catalog, FetchCatalog());
      }
    }
    RETURN_IF_ERROR(conn->ExecuteSimple("COMMIT").status());
    Remember(*snapshot);
    return changes;
  };
  absl::StatusOr<FeedChanges> changes = poll();
  if (!changes.ok() && !conn->Broken()) (void)conn->ExecuteSimple("ROLLBACK");
  return changes;
}

absl::StatusOr<bool> PgChangeFeed::AwaitAnnouncement(absl::Duration timeout, int wake_fd) {
  ASSIGN_OR_RETURN(PgConnection * conn, Connection());
  auto announced = [&]() -> absl::StatusOr<bool> {
    ASSIGN_OR_RETURN(std::vector<PgConnection::Notification> notifications, conn->TakeNotifications());
    for (const PgConnection::Notification& n : notifications) {
      if (n.sender_pid != conn->BackendPid()) return true;  // not our own Announce
    }
    return false;
  };
  ASSIGN_OR_RETURN(bool already, announced());
  if (already) return true;
  pollfd fds[2] = {{conn->Socket(), POLLIN, 0}, {wake_fd, POLLIN, 0}};
  const int ready = ::poll(fds, 2, static_cast<int>(absl::ToInt64Milliseconds(timeout)));
  if (ready <= 0 || (fds[0].revents == 0)) return false;
  return announced();
}

absl::Status PgChangeFeed::Announce() {
  ASSIGN_OR_RETURN(PgConnection * conn, Connection());
  return conn->ExecuteSimple(fmt::format("NOTIFY {}", kChannel).c_str()).status();
}

absl::Status PgChangeFeed::Prune(absl::Duration keep) {
  // The newest position older than `keep`: every transaction that was
  // running then has an id at or above its xmin, so notes below it are of
  // transactions that ended more than `keep` ago.
  const absl::Time cutoff = absl::Now() - keep;
  std::optional<uint64_t> below;
  while (!past_xmins_.empty() && past_xmins_.front().first <= cutoff) {
    below = past_xmins_.front().second;
    past_xmins_.pop_front();
  }
  if (!below) return absl::OkStatus();
  ASSIGN_OR_RETURN(PgConnection * conn, Connection());
  return conn->Execute(kPruneChanges, PgParams().Text(std::to_string(*below))).status();
}

}  // namespace segments::storage
