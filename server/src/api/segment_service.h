// gRPC SegmentService: maps protos to domain commands and back.
#pragma once

#include "common/worker_pool.h"
#include "domain/segment_use_cases.h"
#include "segmentation/v1/segment_service.grpc.pb.h"

namespace segments::api {

class SegmentService final : public segmentation::v1::SegmentService::CallbackService {
 public:
  SegmentService(domain::SegmentUseCases& use_cases, WorkerPool& workers)
      : use_cases_(use_cases), workers_(workers) {}

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

 private:
  domain::SegmentUseCases& use_cases_;
  WorkerPool& workers_;
};

}  // namespace segments::api
