# gateway_target(<target>): the settings every target of ours gets, scoped to
# that target rather than set for the whole tree, so that generated code
# (protos/) and imported libraries keep their own. The top-level
# CMakeLists.txt applies it to every target under our source folders with
# gateway_targets_in(), so that no target can miss it and the folders'
# CMakeLists.txt need not repeat it.
#
#  - The include root: headers are included by their path from the
#    repository root ("gateway/core/translator.h"). PUBLIC on libraries, so
#    that whoever links one can include its headers; PRIVATE on executables.
#  - Warnings as errors (GATEWAY_WARNING_FLAGS, set in the top-level
#    CMakeLists.txt), PRIVATE: they apply to our sources only, never to what
#    a consumer compiles.
#  - In the ThreadSanitizer build, executables link the annotations that
#    make Debian's absl::Mutex visible to TSan (tests/support/tsan/).
function(gateway_target target)
  get_target_property(type ${target} TYPE)
  if(type STREQUAL "UTILITY")
    return()  # custom targets compile nothing
  endif()
  if(type STREQUAL "INTERFACE_LIBRARY")
    target_include_directories(${target} INTERFACE ${PROJECT_SOURCE_DIR})
    return()
  endif()
  if(type STREQUAL "EXECUTABLE")
    target_include_directories(${target} PRIVATE ${PROJECT_SOURCE_DIR})
  else()
    target_include_directories(${target} PUBLIC ${PROJECT_SOURCE_DIR})
  endif()
  target_compile_options(${target} PRIVATE ${GATEWAY_WARNING_FLAGS})
  if(GATEWAY_TSAN AND type STREQUAL "EXECUTABLE")
    target_link_libraries(${target} PRIVATE gateway_tsan_absl_sync)
  endif()
endfunction()

# gateway_targets_in(<dir>...): gateway_target() on every target defined in
# each <dir> (a folder added with add_subdirectory) and the folders below it.
function(gateway_targets_in)
  foreach(dir ${ARGN})
    get_property(targets DIRECTORY ${dir} PROPERTY BUILDSYSTEM_TARGETS)
    foreach(target ${targets})
      gateway_target(${target})
    endforeach()
    get_property(subdirs DIRECTORY ${dir} PROPERTY SUBDIRECTORIES)
    if(subdirs)
      gateway_targets_in(${subdirs})
    endif()
  endforeach()
endfunction()
