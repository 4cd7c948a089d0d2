# Warnings are errors everywhere (STYLE.md §9). -Wconversion is added per target on coap/ and
# dtls/, where truncation bugs live, with coaphub_strict_conversions().
add_compile_options(-Wall -Wextra -Werror -Wshadow -Wformat=2 -Wstrict-prototypes
                    -Wmissing-prototypes -Wvla -Wno-unused-parameter)

function(coaphub_strict_conversions target)
  target_compile_options(${target} PRIVATE -Wconversion -Wsign-conversion)
endfunction()
