# Helpers shared by every folder: one library per folder, one test per file, BPF skeletons.

add_compile_options(-Wall -Wextra -Wno-unused-parameter)
if(FAULTLINE_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
endif()
if(FAULTLINE_FUZZ AND FAULTLINE_SANITIZE)
  # Edge counters in every library, so that a fuzz target is guided by coverage of the parser it
  # drives, not only of its own harness (-fsanitize=fuzzer instruments the harness alone). The
  # ASan runtime gives the other binaries of this build the counters' no-op hooks; no trace-cmp,
  # which would slow the sanitized kernel and Kafka tests.
  add_compile_options(-fsanitize-coverage=inline-8bit-counters,pc-table)
endif()

# faultline_library(NAME <folder> [OBJECT] SOURCES ... DEPS ...)
# Builds faultline_<folder> with alias faultline::<folder>; public headers in <folder>/include.
function(faultline_library)
  cmake_parse_arguments(FL "OBJECT" "NAME" "SOURCES;DEPS;PRIVATE_DEPS" ${ARGN})
  # OBJECT: every object file reaches the final link, so static registrars are never dropped.
  if(FL_OBJECT)
    add_library(faultline_${FL_NAME} OBJECT ${FL_SOURCES})
  else()
    add_library(faultline_${FL_NAME} STATIC ${FL_SOURCES})
  endif()
  add_library(faultline::${FL_NAME} ALIAS faultline_${FL_NAME})
  target_include_directories(faultline_${FL_NAME} PUBLIC
    $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include>)
  target_link_libraries(faultline_${FL_NAME} PUBLIC ${FL_DEPS} PRIVATE ${FL_PRIVATE_DEPS})
endfunction()

# faultline_gtest_executable(NAME <name> SOURCES ... DEPS ...)
# A GoogleTest binary whose main() (tests/common/gtest_main.cc) judges it per case: exit 1 if any
# case failed, 77 only if every case skipped, 0 otherwise; under FAULTLINE_REQUIRE_EBPF=1 a
# skipped case is a failure.
function(faultline_gtest_executable)
  cmake_parse_arguments(FL "" "NAME" "SOURCES;DEPS" ${ARGN})
  if(NOT TARGET faultline_gtest_main)
    add_library(faultline_gtest_main STATIC ${PROJECT_SOURCE_DIR}/tests/common/gtest_main.cc)
    target_link_libraries(faultline_gtest_main PUBLIC GTest::gtest)
  endif()
  add_executable(${FL_NAME} ${FL_SOURCES})
  target_link_libraries(${FL_NAME} PRIVATE ${FL_DEPS} faultline_gtest_main GTest::gtest)
endfunction()

# faultline_test(NAME <name> SOURCES ... DEPS ... LABELS ... [TIMEOUT s])
# A GoogleTest binary registered with ctest under the given labels, as one test: failed if any
# case failed, skipped (SKIP_RETURN_CODE 77) only if every case skipped; the cases skipped beside
# passing ones are listed in its output.
function(faultline_test)
  cmake_parse_arguments(FL "" "NAME;TIMEOUT" "SOURCES;DEPS;LABELS" ${ARGN})
  faultline_gtest_executable(NAME ${FL_NAME} SOURCES ${FL_SOURCES} DEPS ${FL_DEPS})
  add_test(NAME ${FL_NAME} COMMAND ${FL_NAME})
  if(NOT FL_TIMEOUT)
    set(FL_TIMEOUT 300)
  endif()
  set_tests_properties(${FL_NAME} PROPERTIES LABELS "${FL_LABELS}" TIMEOUT ${FL_TIMEOUT}
    SKIP_RETURN_CODE 77)
endfunction()

# faultline_bpf_skeleton(NAME <probe>): compiles agent/bpf/<probe>.bpf.c with clang for the BPF
# target against a vmlinux.h dumped from this kernel's BTF, and generates <probe>.skel.h.
function(faultline_bpf_skeleton NAME)
  set(out ${CMAKE_BINARY_DIR}/bpf)
  set(src ${CMAKE_CURRENT_SOURCE_DIR}/bpf/${NAME}.bpf.c)
  file(GLOB bpf_headers ${CMAKE_CURRENT_SOURCE_DIR}/bpf/*.h)
  add_custom_command(
    OUTPUT ${out}/${NAME}.bpf.o
    COMMAND ${CLANG_EXECUTABLE} -g -O2 -target bpf -D__TARGET_ARCH_x86 -Wall
            -Wno-unused-function -I${out} -I${CMAKE_CURRENT_SOURCE_DIR}/bpf
            -c ${src} -o ${out}/${NAME}.bpf.o
    DEPENDS ${src} ${bpf_headers} ${out}/vmlinux.h
    COMMENT "BPF ${NAME}.bpf.c")
  add_custom_command(
    OUTPUT ${out}/${NAME}.skel.h
    COMMAND ${BPFTOOL_EXECUTABLE} gen skeleton ${out}/${NAME}.bpf.o name ${NAME} > ${out}/${NAME}.skel.h
    DEPENDS ${out}/${NAME}.bpf.o
    COMMENT "skeleton ${NAME}.skel.h")
  set_property(GLOBAL APPEND PROPERTY FAULTLINE_SKELETONS ${out}/${NAME}.skel.h)
endfunction()
