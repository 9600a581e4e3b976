#include <google/protobuf/descriptor.h>

#include <catch2/catch.hpp>
#include <set>
#include <string>

#include "api/access.h"
#include "segmentation/v1/history_service.grpc.pb.h"
#include "segmentation/v1/segment_service.grpc.pb.h"
#include "segmentation/v1/user_admin_service.grpc.pb.h"

namespace segments::api {
namespace {

// "/package.Service/Method" of every method of the services we serve.
std::set<std::string> ServedMethods() {
  std::set<std::string> methods;
  // Through a message of each file, so that its descriptors are linked in.
  for (const google::protobuf::ServiceDescriptor* service :
       {segmentation::v1::CreateSegmentRequest::descriptor()->file()->FindServiceByName("SegmentService"),
        segmentation::v1::ListUserHistoryRequest::descriptor()->file()->FindServiceByName("HistoryService"),
        segmentation::v1::CreateUserRequest::descriptor()->file()->FindServiceByName("UserAdminService")}) {
    REQUIRE(service != nullptr);
    for (int i = 0; i < service->method_count(); ++i) {
      methods.insert("/" + service->full_name() + "/" + service->method(i)->name());
    }
  }
  return methods;
}

}  // namespace

TEST_CASE("every RPC of every service has a row in the access table, and every row is an RPC") {
  const std::set<std::string> served = ServedMethods();
  REQUIRE(served.size() >= 17);
  for (const std::string& method : served) {
    INFO(method);
    CHECK(AccessOf(method) != nullptr);
  }
  std::set<std::string> rows;
  for (const Access& access : AccessTable()) {
    INFO(access.method);
    CHECK(served.count(std::string(access.method)) == 1);
    CHECK(rows.insert(std::string(access.method)).second);  // no method twice
  }
}

TEST_CASE("the table gives the service role the hot read only, and the user replica to admins only") {
  for (const Access& access : AccessTable()) {
    INFO(access.method);
    if (access.method == "/segmentation.v1.SegmentService/GetUserSegments") {
      CHECK(access.role == auth::Role::kService);
    } else if (access.method == "/segmentation.v1.HistoryService/DownloadHistoryReport") {
      CHECK_FALSE(access.role.has_value());  // the signed link is the capability
    } else {
      REQUIRE(access.role.has_value());
      CHECK(*access.role != auth::Role::kService);
    }
    if (access.method.find("UserAdminService") != std::string_view::npos) CHECK(access.role == auth::Role::kAdmin);
  }
}

}  // namespace segments::api
