# Install rules and the Debian package (CPack). `cmake --install` puts memsync under
# CMAKE_INSTALL_PREFIX; scripts/package.sh builds build-pkg/memsync_VERSION_ARCH.deb with prefix
# /usr: the binary, the docs, /etc/memsync/memsync.conf (a conffile), the systemd units and the
# sysusers.d / tmpfiles.d files that make the memsync user and /var/lib/memsync (0700).
# Everything the binary needs at run time (the web UI, the OS end-of-support table) is compiled
# in; man pages are not written yet.
include(GNUInstallDirs)

set(MEMSYNC_PKG_DIR ${PROJECT_SOURCE_DIR}/packaging)
set(MEMSYNC_PKG_OUT ${PROJECT_BINARY_DIR}/packaging)

install(TARGETS memsync RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES ${PROJECT_SOURCE_DIR}/README.md ${MEMSYNC_PKG_DIR}/copyright
  DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(FILES
  ${PROJECT_SOURCE_DIR}/docs/API.md ${PROJECT_SOURCE_DIR}/docs/ARCHITECTURE.md
  ${PROJECT_SOURCE_DIR}/docs/DEPLOY.md ${PROJECT_SOURCE_DIR}/docs/SECURITY.md
  ${PROJECT_SOURCE_DIR}/docs/SETUP.md ${PROJECT_SOURCE_DIR}/docs/STORE.md
  ${PROJECT_SOURCE_DIR}/docs/SIMULATOR.md ${PROJECT_SOURCE_DIR}/docs/nginx.conf
  ${PROJECT_SOURCE_DIR}/docs/alerts.yml
  DESTINATION ${CMAKE_INSTALL_DOCDIR}/docs)
install(FILES ${MEMSYNC_PKG_DIR}/memsync.conf
  DESTINATION ${CMAKE_INSTALL_FULL_SYSCONFDIR}/memsync)

foreach(unit memsync.service memsync-worker@.service)
  configure_file(${MEMSYNC_PKG_DIR}/${unit}.in ${MEMSYNC_PKG_OUT}/${unit} @ONLY)
  install(FILES ${MEMSYNC_PKG_OUT}/${unit} DESTINATION lib/systemd/system)
endforeach()
install(FILES ${MEMSYNC_PKG_DIR}/memsync.sysusers DESTINATION lib/sysusers.d RENAME memsync.conf)
install(FILES ${MEMSYNC_PKG_DIR}/memsync.tmpfiles DESTINATION lib/tmpfiles.d RENAME memsync.conf)

# Debian wants the changelog gzip'd without a time stamp (gzip -n).
configure_file(${MEMSYNC_PKG_DIR}/changelog.in ${MEMSYNC_PKG_OUT}/changelog @ONLY)
find_program(GZIP gzip)
if(GZIP)
  add_custom_command(OUTPUT ${MEMSYNC_PKG_OUT}/changelog.gz
    COMMAND ${GZIP} -9nc ${MEMSYNC_PKG_OUT}/changelog > ${MEMSYNC_PKG_OUT}/changelog.gz
    DEPENDS ${MEMSYNC_PKG_OUT}/changelog VERBATIM)
  add_custom_target(memsync_changelog ALL DEPENDS ${MEMSYNC_PKG_OUT}/changelog.gz)
  install(FILES ${MEMSYNC_PKG_OUT}/changelog.gz DESTINATION ${CMAKE_INSTALL_DOCDIR})
  # Manual pages, gzip'd the same way (man/memsync.conf.5's SETTINGS come from the table:
  # scripts/man-settings.py, checked by the lint test lint.man).
  foreach(page memsync.1 memsync.conf.5)
    string(REGEX REPLACE ".*\\.([0-9])$" "\\1" section ${page})
    add_custom_command(OUTPUT ${MEMSYNC_PKG_OUT}/${page}.gz
      COMMAND ${GZIP} -9nc ${PROJECT_SOURCE_DIR}/man/${page} > ${MEMSYNC_PKG_OUT}/${page}.gz
      DEPENDS ${PROJECT_SOURCE_DIR}/man/${page} VERBATIM)
    add_custom_target(memsync_man_${section} ALL DEPENDS ${MEMSYNC_PKG_OUT}/${page}.gz)
    install(FILES ${MEMSYNC_PKG_OUT}/${page}.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man${section})
  endforeach()
endif()
install(FILES ${PROJECT_SOURCE_DIR}/completions/memsync.bash
  DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions RENAME memsync)

file(WRITE ${MEMSYNC_PKG_OUT}/conffiles "${CMAKE_INSTALL_FULL_SYSCONFDIR}/memsync/memsync.conf\n")

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME memsync)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "memsync maintainers")
set(CPACK_PACKAGE_CONTACT
  "memsync maintainers <maintainers@users.noreply.r-seed-a377ec75.example>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
  "device and app inventory across Microsoft 365 customer tenants")
# The synopsis is the summary above; these are the lines under it (at most 79 characters).
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION "memsync reads a Microsoft partner's customer tenants from Partner Center,
and their Intune devices and installed apps from Microsoft Graph, into SQLite
or PostgreSQL. memsync serve offers a web UI, a REST API and a scheduler;
memsync worker processes share the syncs over machines.")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
  "${MEMSYNC_PKG_OUT}/conffiles;${MEMSYNC_PKG_DIR}/postinst;${MEMSYNC_PKG_DIR}/postrm")
set(CPACK_STRIP_FILES ON)
include(CPack)
