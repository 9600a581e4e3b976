#include "api/segment_service.h"

#include "api/grpc_status.h"
#include "api/idempotency.h"
#include "api/paced_stream.h"
#include "api/proto_time.h"
#include "api/ttl_fields.h"
#include "api/unary_call.h"
#include "common/status_macros.h"

namespace segments::api {
namespace {

namespace v1 = segmentation::v1;

domain::UpdateUserSegmentsCommand ToCommand(const v1::UpdateUserSegmentsRequest& request) {
  domain::UpdateUserSegmentsCommand command{request.user_id(), {}, {}};
  for (const auto& add : request.segments_to_add()) {
    command.to_add.push_back({add.segment_slug(), TtlInputOf(add)});
  }
  for (const auto& remove : request.segments_to_remove()) command.to_remove.push_back(remove.segment_slug());
  return command;
}

void SegmentToProto(const domain::Segment& segment, v1::Segment* out) {
  out->set_slug(segment.slug);
  out->set_percent_to_fill(segment.percent_hundredths / 100.0);
  out->set_description(segment.description);
  ToProto(segment.created_at, out->mutable_created_at());
  for (const std::string& slug : segment.include_slugs) out->add_include_segments(slug);
  for (const std::string& slug : segment.exclude_slugs) out->add_exclude_segments(slug);
  if (segment.auto_options.ttl_seconds) out->set_auto_seconds_to_be_in_segment(*segment.auto_options.ttl_seconds);
}

void MemberToProto(const domain::SegmentMember& member, v1::SegmentMember* out) {
  out->set_user_id(member.user_id.ToString());
  ToProto(member.added_at, out->mutable_added_at());
  if (member.expires_at) ToProto(*member.expires_at, out->mutable_expires_at());
  out->set_automatic(member.automatic);
}

template <typename Request>
domain::SegmentUsersCommand SegmentUsersCommandOf(const Request& request) {
  return {request.slug(), {request.user_ids().begin(), request.user_ids().end()}, {}};
}

// The methods, as the access table (api/access.h) and idempotency keys'
// fingerprints name them.
constexpr std::string_view kCreateSegment = "/segmentation.v1.SegmentService/CreateSegment";
constexpr std::string_view kDeleteSegment = "/segmentation.v1.SegmentService/DeleteSegment";
constexpr std::string_view kUpdateUserSegments = "/segmentation.v1.SegmentService/UpdateUserSegments";
constexpr std::string_view kUpdateSegmentPercent = "/segmentation.v1.SegmentService/UpdateSegmentPercent";
constexpr std::string_view kAddSegmentToUsers = "/segmentation.v1.SegmentService/AddSegmentToUsers";
constexpr std::string_view kRemoveSegmentFromUsers = "/segmentation.v1.SegmentService/RemoveSegmentFromUsers";
constexpr std::string_view kGetSegment = "/segmentation.v1.SegmentService/GetSegment";
constexpr std::string_view kGetUserSegments = "/segmentation.v1.SegmentService/GetUserSegments";
constexpr std::string_view kListSegments = "/segmentation.v1.SegmentService/ListSegments";
constexpr std::string_view kListSegmentMembers = "/segmentation.v1.SegmentService/ListSegmentMembers";
constexpr std::string_view kStreamSegmentMembers = "/segmentation.v1.SegmentService/StreamSegmentMembers";

// Members per message of StreamSegmentMembers.
constexpr int32_t kStreamBatch = 1000;

}  // namespace

grpc::ServerUnaryReactor* SegmentService::CreateSegment(grpc::CallbackServerContext* context,
                                                        const v1::CreateSegmentRequest* request,
                                                        v1::CreateSegmentResponse* response) {
  return calls_.Mutate(context, kCreateSegment, request, response, [this, request, response]() -> absl::Status {
    domain::CreateSegmentCommand command{request->slug(),
                                         std::nullopt,
                                         request->description(),
                                         {request->include_segments().begin(), request->include_segments().end()},
                                         {request->exclude_segments().begin(), request->exclude_segments().end()},
                                         std::nullopt};
    if (request->has_percent_to_fill()) command.percent_to_fill = request->percent_to_fill();
    command.auto_seconds_to_be_in_segment =
        GivenSeconds(request->has_auto_seconds_to_be_in_segment(), request->auto_seconds_to_be_in_segment());
    ASSIGN_OR_RETURN(const domain::Segment created, use_cases_.CreateSegment(command));
    SegmentToProto(created, response->mutable_segment());
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* SegmentService::DeleteSegment(grpc::CallbackServerContext* context,
                                                        const v1::DeleteSegmentRequest* request,
                                                        v1::DeleteSegmentResponse* response) {
  return calls_.Mutate(context, kDeleteSegment, request, response, [this, request, response]() -> absl::Status {
    ASSIGN_OR_RETURN(const int64_t ended, use_cases_.DeleteSegment(request->slug()));
    response->set_memberships_ended(ended);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* SegmentService::UpdateUserSegments(grpc::CallbackServerContext* context,
                                                             const v1::UpdateUserSegmentsRequest* request,
                                                             v1::UpdateUserSegmentsResponse* response) {
  return calls_.Mutate(context, kUpdateUserSegments, request, response,
                       [this, request]() { return use_cases_.UpdateUserSegments(ToCommand(*request)); });
}

grpc::ServerUnaryReactor* SegmentService::GetSegment(grpc::CallbackServerContext* context,
                                                     const v1::GetSegmentRequest* request,
                                                     v1::GetSegmentResponse* response) {
  return calls_.Read(context, kGetSegment, [this, request, response]() -> absl::Status {
    ASSIGN_OR_RETURN(const auto found, use_cases_.GetSegment(request->slug()));
    SegmentToProto(found.first, response->mutable_segment());
    response->set_member_count(found.second);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* SegmentService::GetUserSegments(grpc::CallbackServerContext* context,
                                                          const v1::GetUserSegmentsRequest* request,
                                                          v1::GetUserSegmentsResponse* response) {
  // The hot read: answered on this thread when the read model serves.
  return calls_.ReadAtOnce(
      context, kGetUserSegments,
      [this, request, response]() -> std::optional<grpc::Status> {
        auto at_once = use_cases_.GetUserSegmentsAtOnce(request->user_id());
        if (!at_once) return std::nullopt;
        if (at_once->ok()) {
          for (auto& slug : **at_once) response->add_segments(std::move(slug));
        }
        return ToGrpcStatus(at_once->status());
      },
      [this, request, response]() -> absl::Status {
        ASSIGN_OR_RETURN(std::vector<std::string> slugs, use_cases_.GetUserSegments(request->user_id()));
        for (auto& slug : slugs) response->add_segments(std::move(slug));
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* SegmentService::UpdateSegmentPercent(grpc::CallbackServerContext* context,
                                                               const v1::UpdateSegmentPercentRequest* request,
                                                               v1::UpdateSegmentPercentResponse* response) {
  return calls_.Mutate(context, kUpdateSegmentPercent, request, response, [this, request, response]() -> absl::Status {
    domain::UpdateSegmentPercentCommand command{request->slug(), std::nullopt};
    if (request->has_percent_to_fill()) command.percent_to_fill = request->percent_to_fill();
    ASSIGN_OR_RETURN(const domain::PercentChange change, use_cases_.UpdateSegmentPercent(command));
    response->set_members_added(change.added);
    response->set_members_removed(change.removed);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* SegmentService::ListSegments(grpc::CallbackServerContext* context,
                                                       const v1::ListSegmentsRequest* request,
                                                       v1::ListSegmentsResponse* response) {
  return calls_.Read(context, kListSegments, [this, request, response]() -> absl::Status {
    ASSIGN_OR_RETURN(domain::SegmentPage page, listing_.ListSegments({request->page_size(), request->page_token()}));
    for (const domain::Segment& segment : page.segments) SegmentToProto(segment, response->add_segments());
    response->set_next_page_token(std::move(page.next_page_token));
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* SegmentService::ListSegmentMembers(grpc::CallbackServerContext* context,
                                                             const v1::ListSegmentMembersRequest* request,
                                                             v1::ListSegmentMembersResponse* response) {
  return calls_.Read(context, kListSegmentMembers, [this, request, response]() -> absl::Status {
    ASSIGN_OR_RETURN(domain::MemberPage page,
                     listing_.ListSegmentMembers({request->slug(), request->page_size(), request->page_token()}));
    for (const domain::SegmentMember& member : page.members) MemberToProto(member, response->add_members());
    response->set_next_page_token(std::move(page.next_page_token));
    return absl::OkStatus();
  });
}

grpc::ServerWriteReactor<v1::StreamSegmentMembersResponse>* SegmentService::StreamSegmentMembers(
    grpc::CallbackServerContext* context, const v1::StreamSegmentMembersRequest* request) {
  return calls_.Stream<v1::StreamSegmentMembersResponse>(context, kStreamSegmentMembers, [this, context, request] {
    auto* stream = new PagedStream<v1::StreamSegmentMembersResponse, domain::MemberPage>(
        workers_, context,
        [this, slug = request->slug()](const std::string& token) {
          return listing_.ListSegmentMembers({slug, kStreamBatch, token});
        },
        [](const domain::MemberPage& page, v1::StreamSegmentMembersResponse& response) {
          for (const domain::SegmentMember& member : page.members) MemberToProto(member, response.add_members());
          return !page.members.empty();
        });
    stream->Begin();
    return stream;
  });
}

grpc::ServerUnaryReactor* SegmentService::AddSegmentToUsers(grpc::CallbackServerContext* context,
                                                            const v1::AddSegmentToUsersRequest* request,
                                                            v1::AddSegmentToUsersResponse* response) {
  return calls_.Mutate(context, kAddSegmentToUsers, request, response, [this, request, response]() -> absl::Status {
    domain::SegmentUsersCommand command = SegmentUsersCommandOf(*request);
    command.ttl = TtlInputOf(*request);
    ASSIGN_OR_RETURN(const domain::BulkAddResult result, bulk_.AddSegmentToUsers(command));
    response->set_added(result.added);
    response->set_already_members(result.already_members);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* SegmentService::RemoveSegmentFromUsers(grpc::CallbackServerContext* context,
                                                                 const v1::RemoveSegmentFromUsersRequest* request,
                                                                 v1::RemoveSegmentFromUsersResponse* response) {
  return calls_.Mutate(context, kRemoveSegmentFromUsers, request, response,
                       [this, request, response]() -> absl::Status {
                         ASSIGN_OR_RETURN(const domain::BulkRemoveResult result,
                                          bulk_.RemoveSegmentFromUsers(SegmentUsersCommandOf(*request)));
                         response->set_removed(result.removed);
                         response->set_not_members(result.not_members);
                         return absl::OkStatus();
                       });
}

}  // namespace segments::api
