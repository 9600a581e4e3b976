// Owning jansson values (the JSON library cjose uses): released with
// json_decref when the owner goes.
#pragma once

#include <jansson.h>

#include <memory>

namespace segments::auth {

struct JsonDecref {
  void operator()(json_t* json) const { json_decref(json); }
};
using Json = std::unique_ptr<json_t, JsonDecref>;

// Takes ownership of `json` (a new reference; null stays null).
inline Json Own(json_t* json) { return Json(json); }

}  // namespace segments::auth
