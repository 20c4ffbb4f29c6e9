# cmake/hot_layout.cmake — green_hot_layout(TARGET LIBRARY LIST...): build TARGET (the
# objects; "" for none) with -ffunction-sections and link LIBRARY with a linker script that
# puts the functions named in LIST (src/hot.list, src/patch/hot.list) first in its code, in one
# output section (.text.green_hot) inserted before .text. The kernel maps a file's pages
# 64 KiB around each page a process touches (fault-around), so code that every program
# under greenrun runs, scattered over a library, made most of it resident: together, it
# spans fewer pages. The script also marks the end of what every program runs
# (COMMON_END in LIST: __green_hot_common) and ends the hot code with a hidden symbol,
# __green_hot_end, by which each library's constructor makes each page of its headers
# and of the hot code past the mark a mapping of its own and drops them
# (green_private_text_trim, src/sys.c); it puts .rodata with the headers, away from
# .eh_frame, the small zero-filled variables before the big tables (GREEN_BIG_BSS), and
# the segments on 64 KiB boundaries; and the library's calls into others
# are bound at load (-z now) (docs/DESIGN.md, "Resident code"). Only the layout changes, not the code;
# GREEN_HOT_LAYOUT=OFF turns it off, and it is left out where the linker does not take
# such a script (INSERT: GNU ld, lld).
option(GREEN_HOT_LAYOUT "place the code that greenrun's programs run together (fewer resident pages)" ON)
if(GREEN_HOT_LAYOUT AND NOT DEFINED GREEN_HOT_LAYOUT_WORKS)
  include(CheckCSourceCompiles)
  set(probe ${CMAKE_BINARY_DIR}/CMakeFiles/green-hot-probe.ld)
  file(WRITE ${probe} "SECTIONS\n{\n  .text.green_hot : { *(.text.main) }\n}\nINSERT BEFORE .text;\n")
  set(CMAKE_REQUIRED_FLAGS "-ffunction-sections")
  set(CMAKE_REQUIRED_LINK_OPTIONS "-Wl,-T,${probe}")
  check_c_source_compiles("int main(void) { return 0; }" GREEN_HOT_LAYOUT_WORKS)
  unset(CMAKE_REQUIRED_FLAGS)
  unset(CMAKE_REQUIRED_LINK_OPTIONS)
endif()

function(green_hot_layout objects library list)
  if(NOT GREEN_HOT_LAYOUT OR NOT GREEN_HOT_LAYOUT_WORKS)
    return()
  endif()
  # the toolchain's own code that runs at load: crtbegin's (frame_dummy, ...) and
  # libc_nonshared's (pthread_atfork, atexit)
  set(common "    *crtbegin*.o(.text .text.*)\n    *libc_nonshared.a:*(.text .text.*)\n")
  set(rest "")
  set(marked OFF)
  # more lists (libgreen-run.so: the patch's, then libgreen's): what every program runs
  # of each first, then the rest of each
  foreach(l ${list} ${ARGN})
    file(STRINGS ${l} names REGEX "^[A-Za-z_]")
    set(part common)
    foreach(n ${names})
      if(n STREQUAL "CONTEXT") # the assembly context switch: its object's .text
        string(APPEND ${part} "    *context_*(.text)\n")
      elseif(n STREQUAL "COMMON_END") # the end of what every program runs
        set(part rest)
        set(marked ON)
      else() # the function, its clones (.part.0, .constprop.0, ...), a constructor's, a
        # destructor's, and what GCC calls cold of it (a function marked cold, the branch of
        # an if marked unlikely, split off as NAME.cold): .text.unlikely would put that past
        # the hot code, where one touch maps up to 64 KiB (tests/hot_pages_test.sh)
        string(APPEND ${part} "    *(.text.${n} .text.${n}.* .text.unlikely.${n} .text.unlikely.${n}.* .text.startup.${n} .text.exit.${n})\n")
      endif()
    endforeach()
    set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${l})
  endforeach()
  if(marked)
    set(body "${common}    PROVIDE_HIDDEN(__green_hot_common = .);\n${rest}")
  else()
    set(body "${common}")
  endif()
  set(ld ${PROJECT_BINARY_DIR}/${library}-hot.ld)
  # and the zero-filled variables without a section of their own (the small ones) come
  # first, in an output section before .bss, whose pattern then gets the big tables
  # (GREEN_BIG_BSS, src/green_private.h): the small ones share two pages that every program
  # writes, the tables come after (a statement inserted after .bss would match nothing:
  # .bss's own pattern, earlier in the script, takes every .bss.* first).
  # The read-only data goes with the headers' segment (the dynamic symbols and
  # relocations: read at every start, so mapped anyway), not with .eh_frame, so that
  # the latter's segment stays unmapped unless something unwinds through us
  file(WRITE ${ld} "/* made by cmake/hot_layout.cmake from ${list} ${ARGN} */\n"
    "SECTIONS\n{\n  .rodata :\n  {\n    *(.rodata .rodata.* .gnu.linkonce.r.*)\n  }\n}\nINSERT AFTER .rela.plt;\n"
    "SECTIONS\n{\n  .text.green_hot :\n  {\n${body}    PROVIDE_HIDDEN(__green_hot_end = .);\n  }\n}\nINSERT BEFORE .text;\n"
    "SECTIONS\n{\n  .bss.green_small :\n  {\n    *(.bss)\n  }\n}\nINSERT BEFORE .bss;\n")
  if(objects)
    target_compile_options(${objects} PRIVATE -ffunction-sections)
  endif()
  # segments aligned to 64 KiB: the loader then maps the library at a 64 KiB boundary
  # (glibc 2.35 on), so that fault-around's windows fall on the same code in every
  # process, whatever ASLR chose, and the hot code starts one. Calls into other
  # libraries bound at load (-z now), before the trim: bound lazily, each first call
  # read the headers' relocation, version and symbol pages again, after the trim had
  # dropped them (4 more pages of each library resident)
  target_link_options(${library} PRIVATE "LINKER:-T,${ld}" "LINKER:-z,max-page-size=0x10000" "LINKER:-z,now")
  set_property(TARGET ${library} APPEND PROPERTY LINK_DEPENDS ${ld})
endfunction()
