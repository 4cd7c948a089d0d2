# SANITIZE=address,undefined builds everything with ASan + UBSan; UBSan findings abort so
# that a test fails instead of printing and going on.
if(SANITIZE)
  add_compile_options(-fsanitize=${SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  add_link_options(-fsanitize=${SANITIZE})
endif()
