#include "api/segment_service.h"

#include "api/proto_time.h"
#include "api/unary_call.h"

namespace segments::api {
namespace {

namespace v1 = segmentation::v1;

domain::UpdateUserSegmentsCommand ToCommand(const v1::UpdateUserSegmentsRequest& request) {
  domain::UpdateUserSegmentsCommand command{request.user_id(), {}, {}};
  for (const auto& add : request.segments_to_add()) {
    domain::SegmentToAdd item{add.segment_slug(), std::nullopt, std::nullopt};
    if (add.has_seconds_to_be_in_segment()) item.seconds_to_be_in_segment = add.seconds_to_be_in_segment();
    if (add.has_deadline_for_staying_in_segment()) item.deadline = FromProto(add.deadline_for_staying_in_segment());
    command.to_add.push_back(std::move(item));
  }
  for (const auto& remove : request.segments_to_remove()) command.to_remove.push_back(remove.segment_slug());
  return command;
}

void SegmentToProto(const domain::Segment& segment, v1::Segment* out) {
  out->set_slug(segment.slug);
  out->set_percent_to_fill(segment.percent_hundredths / 100.0);
  out->set_description(segment.description);
  ToProto(segment.created_at, out->mutable_created_at());
}

}  // namespace

grpc::ServerUnaryReactor* SegmentService::CreateSegment(grpc::CallbackServerContext* context,
                                                        const v1::CreateSegmentRequest* request,
                                                        v1::CreateSegmentResponse* response) {
  return RunOnWorkers(context, workers_, [this, request, response]() -> absl::Status {
    domain::CreateSegmentCommand command{request->slug(), std::nullopt, request->description()};
    if (request->has_percent_to_fill()) command.percent_to_fill = request->percent_to_fill();
    auto created = use_cases_.CreateSegment(command);
    if (!created.ok()) return created.status();
    SegmentToProto(*created, response->mutable_segment());
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* SegmentService::DeleteSegment(grpc::CallbackServerContext* context,
                                                        const v1::DeleteSegmentRequest* request,
                                                        v1::DeleteSegmentResponse* response) {
  return RunOnWorkers(context, workers_, [this, request, response]() -> absl::Status {
    auto ended = use_cases_.DeleteSegment(request->slug());
    if (!ended.ok()) return ended.status();
    response->set_memberships_ended(*ended);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* SegmentService::UpdateUserSegments(grpc::CallbackServerContext* context,
                                                             const v1::UpdateUserSegmentsRequest* request,
                                                             v1::UpdateUserSegmentsResponse* /*response*/) {
  return RunOnWorkers(context, workers_,
                      [this, request]() { return use_cases_.UpdateUserSegments(ToCommand(*request)); });
}

grpc::ServerUnaryReactor* SegmentService::GetSegment(grpc::CallbackServerContext* context,
                                                     const v1::GetSegmentRequest* request,
                                                     v1::GetSegmentResponse* response) {
  return RunOnWorkers(context, workers_, [this, request, response]() -> absl::Status {
    auto found = use_cases_.GetSegment(request->slug());
    if (!found.ok()) return found.status();
    SegmentToProto(found->first, response->mutable_segment());
    response->set_member_count(found->second);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* SegmentService::GetUserSegments(grpc::CallbackServerContext* context,
                                                          const v1::GetUserSegmentsRequest* request,
                                                          v1::GetUserSegmentsResponse* response) {
  return RunOnWorkers(context, workers_, [this, request, response]() -> absl::Status {
    auto slugs = use_cases_.GetUserSegments(request->user_id());
    if (!slugs.ok()) return slugs.status();
    for (auto& slug : *slugs) response->add_segments(std::move(slug));
    return absl::OkStatus();
  });
}

}  // namespace segments::api
