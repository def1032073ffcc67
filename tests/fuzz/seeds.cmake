# Writes the small hostile pictures (pixflow-hostile) as fuzz seeds: OUT/jpeg and OUT/png, each
# file without its signature, which the fuzz target puts back.
file(REMOVE_RECURSE ${OUT})
file(MAKE_DIRECTORY ${OUT}/all ${OUT}/jpeg ${OUT}/png)
execute_process(COMMAND ${HOSTILE} ${OUT}/all RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "pixflow-hostile failed")
endif()
file(GLOB pictures ${OUT}/all/*.jpg ${OUT}/all/*.png)
foreach(p ${pictures})
  get_filename_component(name ${p} NAME)
  file(SIZE ${p} size)
  if(size GREATER 1048576) # the slow JPEG: a seed should run in milliseconds
    continue()
  endif()
  if(name MATCHES "\\.jpg$")
    set(fmt jpeg)
    set(start 4) # after ff d8 ff
  else()
    set(fmt png)
    set(start 9) # after the 8-byte signature
  endif()
  # CMake strings cannot hold NUL bytes: tail(1) cuts the signature off.
  execute_process(COMMAND tail -c +${start} ${p} OUTPUT_FILE ${OUT}/${fmt}/${name})
endforeach()
