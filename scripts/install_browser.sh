#!/usr/bin/env bash
# System tools some tests use, from Debian's packages: headless Chromium + ChromeDriver for the
# UI's browser test (tests/test_ui_browser.py) and exiftool, the XMP reader that checks
# `ferindex export --xmp` (tests/test_export.py). Without root or apt those tests are skipped
# with a message; nothing fails here.
need=()
{ [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; } || need+=(chromium chromium-driver)
command -v exiftool >/dev/null || need+=(libimage-exiftool-perl)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"; } >/dev/null 2>&1 \
    || echo "install_browser: apt-get could not install ${need[*]}; the tests that need them will be skipped" >&2
else
  echo "install_browser: not root or no apt-get; install ${need[*]} to run the browser and XMP tests" >&2
fi
exit 0
