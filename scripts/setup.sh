# Shared set-up steps for scripts/serve and scripts/test; sourced, not run.

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

# Install the named Debian packages that are not installed yet.
apt_install() {
    missing=""
    for package in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed"; then
            missing="$missing $package"
        fi
    done
    if [ -n "$missing" ]; then
        echo "Installing Debian packages:$missing"
        $SUDO apt-get update -qq
        # shellcheck disable=SC2086
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
    fi
}

# Create .venv and install the project with the given extras, e.g. "[test]".
python_env() {
    if ! python3 -c "import ensurepip, venv" 2>/dev/null; then
        apt_install python3-venv
    fi
    if [ ! -x .venv/bin/python ]; then
        echo "Creating .venv and installing Python packages (about a minute)..."
        python3 -m venv .venv
    fi
    .venv/bin/pip install -q --disable-pip-version-check -e ".$1"
}

# Install the browser libraries pinned in vendor/package-lock.json (the person
# segmentation model for virtual backgrounds) into vendor/node_modules, which
# the server serves under /vendor/. Reinstalls when the lock file changes.
vendor_env() {
    if ! command -v npm >/dev/null 2>&1; then
        apt_install nodejs npm
    fi
    stamp=vendor/node_modules/.package-lock.json
    if [ ! -f "$stamp" ] || [ vendor/package-lock.json -nt "$stamp" ]; then
        echo "Installing browser libraries into vendor/node_modules..."
        npm ci --prefix vendor --ignore-scripts --no-audit --no-fund --loglevel=error
    fi
}
