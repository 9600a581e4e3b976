# segments_go_binary(NAME MAIN_PACKAGE [DIR <module dir>] [DEPENDS <file>...])
# `go build` of MAIN_PACKAGE (a path in the Go module in DIR, default the
# calling directory) into ${CMAKE_CURRENT_BINARY_DIR}/NAME, as a custom command with
# real inputs: the module's non-test Go sources (top level, cmd/, internal/),
# go.mod, go.sum and DEPENDS (the generated code: gen/ is not globbed, its
# files come and go with every generation and a changing glob reconfigures
# the build). A build with nothing changed does not run go. The target is
# NAME-go; the target NAME is made at the top level (here it would clash in
# Ninja with the file DIR/NAME, as each directory's targets get a "DIR/NAME"
# alias).
function(segments_go_binary name main)
  cmake_parse_arguments(PARSE_ARGV 2 arg "" "DIR" "DEPENDS")
  set(dir ${CMAKE_CURRENT_SOURCE_DIR})
  if(arg_DIR)
    set(dir ${arg_DIR})
  endif()
  file(GLOB top CONFIGURE_DEPENDS ${dir}/*.go)
  file(GLOB_RECURSE sources CONFIGURE_DEPENDS ${dir}/cmd/*.go ${dir}/internal/*.go)
  list(APPEND sources ${top})
  list(FILTER sources EXCLUDE REGEX "_test\\.go$")
  set(bin ${CMAKE_CURRENT_BINARY_DIR}/${name})
  add_custom_command(
    OUTPUT ${bin}
    COMMAND ${GO_EXECUTABLE} build -trimpath -o ${bin} ${main}
    DEPENDS ${sources} ${dir}/go.mod ${dir}/go.sum ${arg_DEPENDS}
    WORKING_DIRECTORY ${dir}
    COMMENT "go build ${name}"
    VERBATIM)
  add_custom_target(${name}-go DEPENDS ${bin})
endfunction()
