coaphub_fuzz_target(NAME web_asset SOURCES ${CMAKE_CURRENT_LIST_DIR}/web_asset.c LIBS coaphub_web)
