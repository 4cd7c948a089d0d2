# Every library comes from a Debian 12 package (scripts/install-deps.sh installs them).
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)
# 3.0.22 or newer (issue #5: the DTLS server faces the internet, so no OpenSSL older than the
# current Debian 12 security release, which scripts/install-deps.sh installs). The server checks
# the library it runs with too (src/dtls/endpoint.c).
find_package(OpenSSL 3.0.22 REQUIRED)
pkg_check_modules(SQLITE3 REQUIRED IMPORTED_TARGET sqlite3)
pkg_check_modules(JANSSON REQUIRED IMPORTED_TARGET jansson)
pkg_check_modules(MHD REQUIRED IMPORTED_TARGET libmicrohttpd)
pkg_check_modules(INIH REQUIRED IMPORTED_TARGET inih)
pkg_check_modules(LIBCRYPT REQUIRED IMPORTED_TARGET libxcrypt)
pkg_check_modules(CURL REQUIRED IMPORTED_TARGET libcurl)
if(BUILD_TESTING)
  pkg_check_modules(CMOCKA REQUIRED IMPORTED_TARGET cmocka)
endif()
