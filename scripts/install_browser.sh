#!/usr/bin/env bash
# Headless Chromium + ChromeDriver for the UI's browser test (tests/test_ui_browser.py), from
# Debian's packages. Without root or apt the test is skipped with a message; nothing fails here.
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; } >/dev/null 2>&1 \
    || echo "install_browser: apt-get could not install chromium; the browser test will be skipped" >&2
else
  echo "install_browser: not root or no apt-get; install chromium + chromium-driver to run the browser test" >&2
fi
exit 0
