# Shared helpers for the project's scripts. Source it; do not run it.

# ensure_packages PKG...: installs the Debian packages that are missing (apt-get, as root or via sudo).
ensure_packages() {
    local missing=()
    for package in "$@"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "installing Debian packages: ${missing[*]}"
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || { echo "need root or sudo to install: ${missing[*]}" >&2; return 1; }
        sudo="sudo"
    fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# ensure_swift: fails with a clear message when the Swift toolchain is missing.
ensure_swift() {
    command -v swift >/dev/null || { echo "Swift 6.1 or newer is required (https://www.swift.org/install/linux/)" >&2; return 1; }
}

# free_port: prints a TCP port nothing listens on.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
