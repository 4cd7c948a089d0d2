# Every library comes from a Debian 12 package (scripts/install-deps.sh installs them).
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)
# 3.0.22 or newer (issue #5: the DTLS server faces the internet, so no OpenSSL older than the
# current Debian 12 security release, which scripts/install-deps.sh installs). The server checks
# the library it runs with too (src/dtls/endpoint.c).
find_package(OpenSSL 3.0.22 REQUIRED)
pkg_check_modules(SQLITE3 REQUIRED IMPORTED_TARGET sqlite3)
pkg_check_modules(LIBPQ REQUIRED IMPORTED_TARGET libpq)
pkg_check_modules(JANSSON REQUIRED IMPORTED_TARGET jansson)
pkg_check_modules(MHD REQUIRED IMPORTED_TARGET libmicrohttpd)
pkg_check_modules(INIH REQUIRED IMPORTED_TARGET inih)
pkg_check_modules(LIBCRYPT REQUIRED IMPORTED_TARGET libxcrypt)
pkg_check_modules(CURL REQUIRED IMPORTED_TARGET libcurl)
if(BUILD_TESTING)
  pkg_check_modules(CMOCKA REQUIRED IMPORTED_TARGET cmocka)
endif()
# The web UI loads npm packages (uPlot) that the build fetches and embeds into the daemon
# (src/web/CMakeLists.txt), so node and npm are build tools like the C compiler: no build of
# coaphub goes without them, and none ships a UI without its chart library.
find_program(NODE_EXECUTABLE NAMES node nodejs)
find_program(NPM_EXECUTABLE NAMES npm)
foreach(tool NODE NPM)
  if(NOT ${tool}_EXECUTABLE)
    string(TOLOWER ${tool} name)
    message(FATAL_ERROR "coaphub: '${name}' not found. The web UI's npm packages "
            "(web/package.json) are part of the build: install node and npm (Debian 12: "
            "apt-get install nodejs npm, or scripts/install-deps.sh), or point CMake at them "
            "with -D${tool}_EXECUTABLE=PATH.")
  endif()
endforeach()
