# Chromium for internal/dashboard's browser test (TestBrowser), which skips
# itself, saying so, when no chromium is on PATH. Best effort: a CI machine
# that is not Debian, or has no root or no mirror, still runs every other test.
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
	apt-get update -qq >/dev/null 2>&1 &&
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 ||
		echo "ci: could not install chromium; the dashboard's browser test will be skipped" >&2
fi
