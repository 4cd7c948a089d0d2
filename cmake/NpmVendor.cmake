# NpmVendor.cmake — the web UI's npm step, run by the build (cmake -P; src/web/CMakeLists.txt):
#   -DNPM=npm -DWEB=<source>/web -DOUT=<dir> -DFILES=name=package/path;... -DSTAMP=<file>
#
# Installs web/package-lock.json into web/node_modules with `npm ci` unless node_modules already
# holds exactly that lockfile (npm's own record of what it installed, node_modules/
# .package-lock.json, is newer than package.json and the lockfile, and every file we take is
# there), so a rebuild, another build folder or an offline machine reuses it; then copies the
# files the UI loads into OUT (only when their bytes changed, so nothing downstream rebuilds for
# nothing). node_modules stays in web/ because the browser tests load playwright-core from it.
# A lock serialises builds of several folders that would otherwise run npm ci at once.
foreach(v NPM WEB OUT FILES STAMP)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "NpmVendor.cmake: -D${v}= is missing")
  endif()
endforeach()

file(LOCK "${WEB}/.npm-ci.lock" GUARD PROCESS TIMEOUT 900 RESULT_VARIABLE locked)
if(NOT locked STREQUAL "0")
  message(FATAL_ERROR "web UI: cannot lock ${WEB}/.npm-ci.lock: ${locked}")
endif()

set(installed "${WEB}/node_modules/.package-lock.json")
set(fresh TRUE)
if(NOT EXISTS "${installed}" OR "${WEB}/package-lock.json" IS_NEWER_THAN "${installed}"
   OR "${WEB}/package.json" IS_NEWER_THAN "${installed}")
  set(fresh FALSE)
endif()
foreach(f IN LISTS FILES)
  string(REGEX REPLACE "^[^=]*=" "" src "${f}")
  if(NOT EXISTS "${WEB}/node_modules/${src}")
    set(fresh FALSE)
  endif()
endforeach()

if(NOT fresh)
  message(STATUS "web UI: npm ci in ${WEB} (web/package-lock.json)")
  # --prefer-offline: packages already in npm's cache are not fetched again.
  execute_process(COMMAND "${NPM}" ci --prefer-offline --no-audit --no-fund --loglevel=error
                  WORKING_DIRECTORY "${WEB}" RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "web UI: 'npm ci' in ${WEB} failed (${rc}); it needs the npm registry "
            "or npm's cache the first time, and nothing once web/node_modules is installed")
  endif()
endif()

file(MAKE_DIRECTORY "${OUT}")
foreach(f IN LISTS FILES)
  string(REGEX MATCH "^[^=]*" name "${f}")
  string(REGEX REPLACE "^[^=]*=" "" src "${f}")
  if(NOT EXISTS "${WEB}/node_modules/${src}")
    message(FATAL_ERROR "web UI: ${WEB}/node_modules/${src} is missing after npm ci "
            "(web/package.json's coaphub.vendor names a file the package does not have)")
  endif()
  file(COPY_FILE "${WEB}/node_modules/${src}" "${OUT}/${name}" ONLY_IF_DIFFERENT)
endforeach()
file(TOUCH "${STAMP}")
file(LOCK "${WEB}/.npm-ci.lock" RELEASE)
