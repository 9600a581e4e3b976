// gRPC SegmentService: maps protos to domain commands and back.
#pragma once

#include "api/access.h"
#include "api/calls.h"
#include "common/worker_pool.h"
#include "domain/bulk_membership_use_cases.h"
#include "domain/listing_use_cases.h"
#include "domain/segment_use_cases.h"
#include "segmentation/v1/segment_service.grpc.pb.h"

namespace segments::api {

class SegmentService final : public segmentation::v1::SegmentService::CallbackService {
 public:
  // Mutating calls with an idempotency key go through `idempotent_calls`.
  SegmentService(domain::SegmentUseCases& use_cases, domain::BulkMembershipUseCases& bulk,
                 domain::ListingUseCases& listing, domain::IdempotentCalls& idempotent_calls, WorkerPool& workers,
                 const CallGuard& guard)
      : use_cases_(use_cases),
        bulk_(bulk),
        listing_(listing),
        workers_(workers),
        calls_(workers, guard, &idempotent_calls) {}

  grpc::ServerUnaryReactor* CreateSegment(grpc::CallbackServerContext* context,
                                          const segmentation::v1::CreateSegmentRequest* request,
                                          segmentation::v1::CreateSegmentResponse* response) override;
  grpc::ServerUnaryReactor* DeleteSegment(grpc::CallbackServerContext* context,
                                          const segmentation::v1::DeleteSegmentRequest* request,
                                          segmentation::v1::DeleteSegmentResponse* response) override;
  grpc::ServerUnaryReactor* UpdateUserSegments(grpc::CallbackServerContext* context,
                                               const segmentation::v1::UpdateUserSegmentsRequest* request,
                                               segmentation::v1::UpdateUserSegmentsResponse* response) override;
  grpc::ServerUnaryReactor* GetSegment(grpc::CallbackServerContext* context,
                                       const segmentation::v1::GetSegmentRequest* request,
                                       segmentation::v1::GetSegmentResponse* response) override;
  grpc::ServerUnaryReactor* GetUserSegments(grpc::CallbackServerContext* context,
                                            const segmentation::v1::GetUserSegmentsRequest* request,
                                            segmentation::v1::GetUserSegmentsResponse* response) override;

  grpc::ServerUnaryReactor* UpdateSegmentPercent(grpc::CallbackServerContext* context,
                                                 const segmentation::v1::UpdateSegmentPercentRequest* request,
                                                 segmentation::v1::UpdateSegmentPercentResponse* response) override;
  grpc::ServerUnaryReactor* ListSegments(grpc::CallbackServerContext* context,
                                         const segmentation::v1::ListSegmentsRequest* request,
                                         segmentation::v1::ListSegmentsResponse* response) override;
  grpc::ServerUnaryReactor* ListSegmentMembers(grpc::CallbackServerContext* context,
                                               const segmentation::v1::ListSegmentMembersRequest* request,
                                               segmentation::v1::ListSegmentMembersResponse* response) override;
  grpc::ServerWriteReactor<segmentation::v1::StreamSegmentMembersResponse>* StreamSegmentMembers(
      grpc::CallbackServerContext* context, const segmentation::v1::StreamSegmentMembersRequest* request) override;
  grpc::ServerUnaryReactor* AddSegmentToUsers(grpc::CallbackServerContext* context,
                                              const segmentation::v1::AddSegmentToUsersRequest* request,
                                              segmentation::v1::AddSegmentToUsersResponse* response) override;
  grpc::ServerUnaryReactor* RemoveSegmentFromUsers(grpc::CallbackServerContext* context,
                                                   const segmentation::v1::RemoveSegmentFromUsersRequest* request,
                                                   segmentation::v1::RemoveSegmentFromUsersResponse* response) override;

 private:
  domain::SegmentUseCases& use_cases_;
  domain::BulkMembershipUseCases& bulk_;
  domain::ListingUseCases& listing_;
  WorkerPool& workers_;
  Calls calls_;
};

}  // namespace segments::api
