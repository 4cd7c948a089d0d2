# Under libFuzzer every library is instrumented too, so the fuzzer sees coverage inside the
# code under test and not only in the harness (the ASan runtime provides the hooks elsewhere).
# -O1 as OSS-Fuzz builds: a Debug build is -O0, where every load, store and comparison goes
# through the sanitizer and coverage hooks unoptimised; -O1 keeps every check (asserts too, no
# NDEBUG) and the targets run 2-3 times as many inputs per CPU second.
if(BUILD_FUZZERS)
  add_compile_options(-fsanitize=fuzzer-no-link -O1)
endif()

# coaphub_fuzz_target(NAME n SOURCES a.c ... LIBS lib ... [FUZZ_ARGS -flag=v ...])
#
# FUZZ_ARGS are the target's own libFuzzer flags (e.g. -max_len, with the reason beside them in
# the target's .cmake); scripts/fuzz.sh reads them from <build>/fuzz_<n>.args.
#
# Every build links the target's LLVMFuzzerTestOneInput to tests/fuzz/replay_main.c and runs
# it over tests/fuzz/corpus/<n>/ as a ctest (label fuzz-replay), so a crash found once stays
# fixed even without clang. With BUILD_FUZZERS=ON (clang) it also builds fuzz_<n>, a real
# libFuzzer binary, which scripts/fuzz.sh runs to 1 M executions in CI.
function(coaphub_fuzz_target)
  cmake_parse_arguments(F "" "NAME" "SOURCES;LIBS;FUZZ_ARGS" ${ARGN})
  set(replay replay_${F_NAME})
  add_executable(${replay} ${F_SOURCES} ${PROJECT_SOURCE_DIR}/tests/fuzz/replay_main.c)
  target_link_libraries(${replay} PRIVATE ${F_LIBS})
  target_include_directories(${replay} PRIVATE ${PROJECT_SOURCE_DIR}/src)
  add_test(NAME fuzz_replay_${F_NAME}
           COMMAND ${replay} ${PROJECT_SOURCE_DIR}/tests/fuzz/corpus/${F_NAME})
  set_tests_properties(fuzz_replay_${F_NAME} PROPERTIES LABELS fuzz-replay)
  if(BUILD_FUZZERS)
    add_executable(fuzz_${F_NAME} ${F_SOURCES})
    target_link_libraries(fuzz_${F_NAME} PRIVATE ${F_LIBS})
    target_include_directories(fuzz_${F_NAME} PRIVATE ${PROJECT_SOURCE_DIR}/src)
    target_compile_options(fuzz_${F_NAME} PRIVATE -fsanitize=fuzzer)
    target_link_options(fuzz_${F_NAME} PRIVATE -fsanitize=fuzzer)
    list(JOIN F_FUZZ_ARGS " " fuzz_args)
    file(WRITE ${PROJECT_BINARY_DIR}/fuzz_${F_NAME}.args "${fuzz_args}\n")
  endif()
endfunction()

# coaphub_unit_test(NAME n SOURCES a.c ... LIBS lib ... [BOTH_BACKENDS]): one cmocka executable,
# one ctest. With BOTH_BACKENDS (the store's tests) the executable runs twice: as n on SQLite
# (labels unit, sqlite) and as n_pg on PostgreSQL (labels unit, postgresql), told apart by
# COAPHUB_TEST_BACKEND; the PostgreSQL run needs COAPHUB_TEST_PG (scripts/test.sh starts a
# server) and fails without it (tests/unit/store/store_test_util.h).
function(coaphub_unit_test)
  cmake_parse_arguments(U "BOTH_BACKENDS" "NAME" "SOURCES;LIBS" ${ARGN})
  add_executable(${U_NAME} ${U_SOURCES})
  target_link_libraries(${U_NAME} PRIVATE ${U_LIBS} PkgConfig::CMOCKA)
  target_include_directories(${U_NAME} PRIVATE ${PROJECT_SOURCE_DIR}/src ${PROJECT_SOURCE_DIR}/tests)
  add_test(NAME ${U_NAME} COMMAND ${U_NAME})
  if(U_BOTH_BACKENDS)
    set_tests_properties(${U_NAME} PROPERTIES LABELS "unit;sqlite" TIMEOUT 60
                         ENVIRONMENT COAPHUB_TEST_BACKEND=sqlite)
    add_test(NAME ${U_NAME}_pg COMMAND ${U_NAME})
    set_tests_properties(${U_NAME}_pg PROPERTIES LABELS "unit;postgresql" TIMEOUT 120
                         ENVIRONMENT COAPHUB_TEST_BACKEND=postgresql)
  else()
    set_tests_properties(${U_NAME} PROPERTIES LABELS unit TIMEOUT 60)
  endif()
endfunction()
