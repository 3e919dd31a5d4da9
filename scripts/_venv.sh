# shellcheck shell=bash
# Shared bootstrap, *sourced* by scripts/test (and later scripts/demo, scripts/bench).
#
# Caller sets, before sourcing:
#   DEB_PACKAGES    space-separated Debian packages the caller needs (may be empty)
#   EXTRAS          comma-separated pip extras of this project, e.g. "test" or "test,rfid"
#   DEB_OPTIONAL    1 = a failed/impossible Debian install is only a warning (default 0:
#                   it is fatal). scripts/test uses 1: tests needing pcscd skip themselves.
# Optional:
#   PYTHON          interpreter used to create .venv (default: python3); must be >= 3.11
#
# Effects: cwd becomes the repo root; .venv exists with the project installed
# editable with its extras; `VENV_PY` names the venv's python.
# A second run is fast: pip is skipped while .venv/.installed-<hash> matches
# sha256(setup.cfg + pyproject.toml + EXTRAS), and apt is only touched for
# packages that `dpkg -s` says are missing.

_venv_log() { printf '[bootstrap] %s\n' "$*" >&2; }
_venv_die() { printf '[bootstrap] ERROR: %s\n' "$*" >&2; exit 1; }

cd "$(dirname "${BASH_SOURCE[0]}")/.." || _venv_die "cannot cd to repo root"

: "${DEB_PACKAGES:=}"
: "${EXTRAS:=}"
: "${DEB_OPTIONAL:=0}"
: "${PYTHON:=python3}"

# --- Debian packages --------------------------------------------------------
_venv_deb_missing() {
    local p missing=()
    for p in $DEB_PACKAGES; do
        # Installed means Status "install ok installed", not just "known to dpkg".
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
            missing+=("$p")
        fi
    done
    printf '%s\n' "${missing[*]:-}"
}

_venv_deb_problem() {  # fatal unless DEB_OPTIONAL=1
    if [[ "$DEB_OPTIONAL" == 1 ]]; then
        _venv_log "WARNING: $*"
        _venv_log "WARNING: continuing; tests that need these packages will skip."
    else
        _venv_die "$*"
    fi
}

if [[ -n "${DEB_PACKAGES// /}" ]]; then
    if ! command -v dpkg-query >/dev/null 2>&1; then
        _venv_deb_problem "not a Debian-based system (no dpkg-query); please install the equivalent of: $DEB_PACKAGES"
    else
        _venv_missing="$(_venv_deb_missing)"
        if [[ -n "$_venv_missing" ]]; then
            if [[ "$(id -u)" == 0 ]]; then
                _venv_log "installing Debian packages: $_venv_missing"
                # shellcheck disable=SC2086  # word splitting of the package list is intended
                # Bounded network waits so an offline machine fails fast.
                _venv_apt=(apt-get -o Acquire::Retries=1 -o Acquire::http::Timeout=30)
                if ! { DEBIAN_FRONTEND=noninteractive "${_venv_apt[@]}" update -qq \
                        && DEBIAN_FRONTEND=noninteractive "${_venv_apt[@]}" install -y -qq \
                            --no-install-recommends $_venv_missing >/dev/null; } </dev/null; then
                    _venv_deb_problem "apt-get failed to install: $_venv_missing (no network?)"
                fi
            else
                _venv_deb_problem "missing Debian packages: $_venv_missing
[bootstrap] install them with:
[bootstrap]     sudo apt-get update && sudo apt-get install -y --no-install-recommends $_venv_missing"
            fi
        fi
        unset _venv_missing _venv_apt
    fi
fi

# --- virtualenv -------------------------------------------------------------
_venv_py_ok() {  # $1 = interpreter; true when it runs and is >= 3.11
    "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null
}

if [[ -x .venv/bin/python ]] && ! _venv_py_ok .venv/bin/python; then
    if .venv/bin/python -c 'pass' 2>/dev/null; then
        _venv_die ".venv uses $(.venv/bin/python -V 2>&1), need Python >= 3.11: remove it (rm -rf .venv) and re-run with PYTHON=/path/to/python3.11+"
    fi
    _venv_log ".venv is broken (its python does not run): recreating it"
    rm -rf .venv
fi

if [[ ! -x .venv/bin/python ]]; then
    command -v "$PYTHON" >/dev/null 2>&1 \
        || _venv_die "'$PYTHON' not found: install Python >= 3.11 or set PYTHON=/path/to/python3.11+"
    _venv_py_ok "$PYTHON" \
        || _venv_die "$("$PYTHON" -V 2>&1) is too old: Python >= 3.11 required (set PYTHON=/path/to/python3.11+)"
    _venv_log "creating .venv with $("$PYTHON" -V 2>&1)"
    "$PYTHON" -m venv .venv \
        || _venv_die "'$PYTHON -m venv .venv' failed (see above; Debian's own python3 also needs the python3-venv package)"
fi
VENV_PY="$PWD/.venv/bin/python"

# --- project install (skipped while the stamp matches) ----------------------
_venv_hash="$(cat setup.cfg pyproject.toml <(printf 'extras=%s\n' "$EXTRAS") | sha256sum | cut -c1-16)"
_venv_stamp=".venv/.installed-$_venv_hash"
if [[ ! -e "$_venv_stamp" ]]; then
    _venv_spec="."
    [[ -n "$EXTRAS" ]] && _venv_spec=".[$EXTRAS]"
    _venv_log "pip install -e '$_venv_spec' (setup.cfg/pyproject.toml/EXTRAS changed or fresh .venv)"
    "$VENV_PY" -m pip install -q --disable-pip-version-check -e "$_venv_spec" \
        || _venv_die "pip install -e '$_venv_spec' failed (see the errors above)"
    rm -f .venv/.installed-*
    : >"$_venv_stamp"
    unset _venv_spec
fi
unset _venv_hash _venv_stamp
