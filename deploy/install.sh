#!/usr/bin/env bash
# Install or upgrade fleetmon on a Debian ops server from a checkout of this repository.
# Run as root; safe to run again (each run is an install, an upgrade or a no-change rebuild).
# The guide is docs/OPERATIONS.md.
set -euo pipefail
umask 022  # the release must be readable by the fleetmon user whatever root's umask is

usage() {
    cat <<'EOF'
Usage: deploy/install.sh [OPTIONS]

Install or upgrade fleetmon from this checkout (run as root):
  - system user and group `fleetmon` (no login shell, home /var/lib/fleetmon);
  - a new venv /opt/fleetmon/releases/<version>-<time> with this checkout pip-installed in it;
    /opt/fleetmon/venv points at the current release, /opt/fleetmon/venv.previous at the one
    before (kept for --rollback); older releases are removed;
  - /etc/fleetmon/config.yaml and the example point lists, only when there is no config yet
    (an existing config is never changed; the new example goes to config.yaml.new);
  - /etc/fleetmon/secrets (0750 root:fleetmon), /var/lib/fleetmon (0750 fleetmon, kept);
  - /etc/systemd/system/fleetmon.service; enabled, and restarted on an upgrade, when systemd runs;
  - /etc/systemd/system/fleetmon-backup.{service,timer}: a daily online backup of the state
    database (fleetmon backup --keep 14); the timer enabled and started when systemd runs;
  - /etc/systemd/system/fleetmon-agent.service: the probe agent's unit (fleetmon agent), not
    enabled: an agent machine enables it;
  - /usr/local/bin/fleetmon, a symlink to /opt/fleetmon/venv/bin/fleetmon.
`fleetmon check-config` must accept the installed config with the new version before it is
switched to; otherwise nothing changes and the running version stays.

Options:
  --prefix-root DIR  install under DIR instead of / (files name the final paths; for tests
                     and image builds; DIR/etc/passwd and DIR/etc/group must exist)
  --no-apt           do not install Debian packages (python3, python3-venv, gcc, python3-dev; fonts-noto-cjk and Pango for reports)
  --no-start         do not start or restart the service
  --pip-args "ARGS"  extra pip install arguments, e.g. offline:
                     --pip-args "--no-index --find-links /srv/fleetmon-wheels"
  --python PATH      interpreter for the venv (default /usr/bin/python3, 3.11 or newer)
  --rollback         switch back to the previous release (no build), then restart it
  -h, --help         this text
Exit status: 0 done, 1 failed (nothing switched), 2 usage error.
EOF
}

die() { echo "install.sh: error: $*" >&2; exit 1; }
say() { echo "install.sh: $*"; }

ROOT=""
APT=1
START=1
PIP_ARGS=""
PYTHON=/usr/bin/python3
ROLLBACK=0
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix-root) [ $# -ge 2 ] || { usage >&2; exit 2; }; ROOT="$2"; shift 2 ;;
        --no-apt) APT=0; shift ;;
        --no-start) START=0; shift ;;
        --pip-args) [ $# -ge 2 ] || { usage >&2; exit 2; }; PIP_ARGS="$2"; shift 2 ;;
        --python) [ $# -ge 2 ] || { usage >&2; exit 2; }; PYTHON="$2"; shift 2 ;;
        --rollback) ROLLBACK=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "install.sh: unknown option: $1" >&2; usage >&2; exit 2 ;;
    esac
done

[ "$(id -u)" -eq 0 ] || die "run as root (it creates a system user and writes /opt, /etc and /var/lib)"
if [ -n "$ROOT" ]; then
    [ -d "$ROOT" ] || die "--prefix-root $ROOT: not a directory"
    ROOT="$(cd "$ROOT" && pwd)"
    [ "$ROOT" != / ] || ROOT=""
fi

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Final paths, as the running system sees them; "$ROOT$X" is where they are written.
OPT=/opt/fleetmon
ETC=/etc/fleetmon
STATE=/var/lib/fleetmon
UNIT=/etc/systemd/system/fleetmon.service
SYSTEMD=0
[ -z "$ROOT" ] && [ -d /run/systemd/system ] && SYSTEMD=1

mkdir -p "$ROOT$OPT/releases"
# One install at a time: a second one would race on the symlinks and prune the other's release.
exec 9>"$ROOT$OPT/.install.lock"
flock -n 9 || die "another install.sh is running on $ROOT$OPT"

# --- the fleetmon user -------------------------------------------------------------------------

user_exists() {
    if [ -n "$ROOT" ]; then grep -q "^$1:" "$ROOT/etc/$2"; else getent "$2" "$1" >/dev/null; fi
}

# "uid:gid" of fleetmon, from the (prefix root's) user database: used by number, since a
# prefix root's users are unknown to the host.
fleetmon_ids() {
    if [ -z "$ROOT" ]; then getent passwd fleetmon; else grep '^fleetmon:' "$ROOT/etc/passwd"; fi | cut -d: -f3,4
}

ensure_user() {
    local prefix=()
    if [ -n "$ROOT" ]; then
        [ -f "$ROOT/etc/passwd" ] && [ -f "$ROOT/etc/group" ] || die "$ROOT/etc/passwd and $ROOT/etc/group must exist"
        prefix=(--prefix "$ROOT")
    fi
    if ! user_exists fleetmon group; then
        groupadd "${prefix[@]}" --system fleetmon
        say "created group fleetmon"
    fi
    if ! user_exists fleetmon passwd; then
        useradd "${prefix[@]}" --system --gid fleetmon --home-dir "$STATE" --no-create-home \
            --shell /usr/sbin/nologin --comment "fleetmon monitoring daemon" fleetmon
        say "created user fleetmon"
    fi
}

# --- helpers -----------------------------------------------------------------------------------

release_version() {  # the fleetmon version installed in a release venv
    "$1/bin/python" -I -c 'import importlib.metadata as m; print(m.version("fleetmon"))'
}

# Run `fleetmon check-config` of release $1 on the installed config as the daemon will: as
# user fleetmon (so that an unreadable release, config or secret file shows up now) with the
# unit's EnvironmentFile.
check_config() {
    local release="$1" envs=() line key value
    local envfile="$ROOT$ETC/secrets/fleetmon.env"
    if [ -f "$envfile" ]; then
        # systemd's EnvironmentFile syntax for the common case: KEY=VALUE, optional quotes,
        # '#' comments. Values go into the check's environment only, never to the output.
        while IFS= read -r line || [ -n "$line" ]; do
            line="${line#"${line%%[![:space:]]*}"}"
            case "$line" in ''|'#'*|';'*) continue ;; esac
            line="${line#export }"
            key="${line%%=*}"
            value="${line#*=}"
            [[ "$key" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || continue
            case "$value" in \"*\") value="${value:1:-1}" ;; \'*\') value="${value:1:-1}" ;; esac
            envs+=("$key=$value")
        done <"$envfile"
    fi
    # Exported in a subshell, not given to `env`: command lines are visible to every local user.
    (
        for line in "${envs[@]}"; do export "${line?}"; done
        cd / && HOME="$STATE" exec setpriv --reuid="${IDS%:*}" --regid="${IDS#*:}" --clear-groups \
            "$release/bin/fleetmon" check-config "$ROOT$ETC/config.yaml"
    )
}

systemd_apply() {  # $1: restart (an upgrade or rollback) | none (a first install)
    if [ "$SYSTEMD" -eq 1 ]; then
        systemctl daemon-reload
        systemctl enable --quiet fleetmon.service
        systemctl enable --quiet --now fleetmon-backup.timer
        if [ "$1" = restart ] && [ "$START" -eq 1 ]; then
            systemctl try-restart fleetmon.service
            say "restarted fleetmon if it was running: check 'systemctl status fleetmon'"
        fi
    else
        local what="systemctl daemon-reload && systemctl enable fleetmon && systemctl enable --now fleetmon-backup.timer"
        [ "$1" = none ] || what="$what && systemctl restart fleetmon"
        say "systemd is not running here; on the target system run: $what"
    fi
}

# Point $ROOT$OPT/$1 at releases/$2 atomically (rename over the old symlink).
point() {
    ln -sfn "releases/$2" "$ROOT$OPT/.$1.tmp"
    mv -T "$ROOT$OPT/.$1.tmp" "$ROOT$OPT/$1"
}

current_release() { [ -L "$ROOT$OPT/$1" ] && basename "$(readlink "$ROOT$OPT/$1")" || true; }

[ ! -e "$ROOT$OPT/venv" ] || [ -L "$ROOT$OPT/venv" ] \
    || die "$OPT/venv is not a symlink (not installed by install.sh): move it away first"

# --- rollback ----------------------------------------------------------------------------------

if [ "$ROLLBACK" -eq 1 ]; then
    cur="$(current_release venv)"
    prev="$(current_release venv.previous)"
    [ -n "$cur" ] && [ -n "$prev" ] && [ -d "$ROOT$OPT/releases/$prev" ] || die "no previous release to roll back to"
    [ -f "$ROOT$ETC/config.yaml" ] || die "$ETC/config.yaml is missing"
    IDS="$(fleetmon_ids)"
    [ -n "$IDS" ] || die "user fleetmon does not exist"
    check_config "$ROOT$OPT/releases/$prev" || die "the previous release ($prev) rejects $ETC/config.yaml (above); nothing changed"
    point venv "$prev"
    point venv.previous "$cur"
    say "rolled back: $OPT/venv -> releases/$prev (fleetmon $(release_version "$ROOT$OPT/venv"));" \
        "venv.previous -> releases/$cur (run --rollback again to return to it)"
    systemd_apply restart
    exit 0
fi

# --- Debian packages ---------------------------------------------------------------------------

if [ "$APT" -eq 1 ]; then
    # What the daemon needs at run time: an interpreter and venv (the rest comes from pip), a C
    # compiler and the Python headers to build the ICMP core (probes/_icmpcore.c), and for
    # reports the CJK fonts and Pango that WeasyPrint lays the PDFs out with.
    missing=()
    for p in python3 python3-venv gcc python3-dev fonts-noto-cjk libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0; do
        dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        say "installing Debian packages: ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
fi
"$PYTHON" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
    || die "$PYTHON is not Python >= 3.11 with venv and ensurepip (Debian: apt-get install python3-venv)"

# --- user and directories ----------------------------------------------------------------------

ensure_user
IDS="$(fleetmon_ids)"
[ -n "$IDS" ] || die "user fleetmon not found after creating it"
GID="${IDS#*:}"

install -d -m 0755 -o 0 -g 0 "$ROOT$OPT" "$ROOT$OPT/releases" "$ROOT$ETC" "$ROOT/etc/systemd/system"
install -d -m 0750 -o 0 -g "$GID" "$ROOT$ETC/secrets"
install -d -m 0750 -o "${IDS%:*}" -g "$GID" "$ROOT$STATE"

# --- build the new release ---------------------------------------------------------------------

for f in pyproject.toml config.yaml examples/points.csv examples/points.xlsx deploy/fleetmon.service \
    deploy/fleetmon-agent.service deploy/fleetmon-backup.service deploy/fleetmon-backup.timer; do
    [ -f "$SRC/$f" ] || die "$SRC/$f is missing: run install.sh from a fleetmon checkout"
done
VERSION="$("$PYTHON" -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["project"]["version"])' \
    "$SRC/pyproject.toml")"
NAME="$VERSION-$(date -u +%Y%m%dT%H%M%SZ)"
[ ! -e "$ROOT$OPT/releases/$NAME" ] || NAME="$NAME-$$"
NEW="$ROOT$OPT/releases/$NAME"
STAGE="$(mktemp -d)"
SWITCHED=0
cleanup() {
    rm -rf "$STAGE"
    if [ "$SWITCHED" -eq 0 ] && [ -n "${NEW:-}" ] && [ -d "$NEW" ]; then rm -rf "$NEW"; fi
}
trap cleanup EXIT

# Build from a clean copy: an in-tree build would reuse a stale build/ (deleted modules come
# back) and write into the checkout.
tar -C "$SRC" --exclude=./.git --exclude=./.venv --exclude=./build --exclude=./var --exclude=./.stamps \
    --exclude='*.egg-info' --exclude='*.so' --exclude=__pycache__ --exclude=.pytest_cache --exclude=.ruff_cache -cf - . \
    | tar -C "$STAGE" -xf -
say "building fleetmon $VERSION in $NEW"
"$PYTHON" -m venv "$NEW"
read -ra pip_args <<<"$PIP_ARGS"
"$NEW/bin/pip" install --quiet --no-input --disable-pip-version-check --progress-bar off \
    "${pip_args[@]}" "$STAGE" || die "pip install failed; nothing changed"
install -d -m 0755 "$NEW/doc"
install -m 0644 "$SRC/README.md" "$SRC/docs/"*.md "$NEW/doc/"

# The example config for this system: point lists beside it in /etc/fleetmon (relative paths
# are relative to the config file), the state database in /var/lib/fleetmon, secret files in
# /etc/fleetmon/secrets.
TEMPLATE="$STAGE/config.yaml.installed"
sed -e 's#^\(    - \)examples/\(points\.csv\|points\.xlsx\)\b#\1\2#' \
    -e "s#^\(  database: \)var/state\.db\b#\1$STATE/state.db#" \
    -e "s#$ETC/\([A-Za-z0-9_.-]*\.\(password\|key\|token\)\)\b#$ETC/secrets/\1#g" \
    "$SRC/config.yaml" >"$TEMPLATE"
if grep -q 'examples/' "$TEMPLATE" || ! grep -q "^  database: $STATE/state.db" "$TEMPLATE"; then
    die "config.yaml in the checkout no longer has the lines install.sh adapts (point_lists, state.database)"
fi

# --- config (never overwritten) ------------------------------------------------------------------

if [ ! -e "$ROOT$ETC/config.yaml" ]; then
    FIRST=1
    install -m 0640 -o 0 -g "$GID" "$TEMPLATE" "$ROOT$ETC/config.yaml"
    for f in points.csv points.xlsx; do
        [ -e "$ROOT$ETC/$f" ] || install -m 0640 -o 0 -g "$GID" "$SRC/examples/$f" "$ROOT$ETC/$f"
    done
    say "installed the example config $ETC/config.yaml and point lists $ETC/points.{csv,xlsx}: edit them"
else
    FIRST=0
    if cmp -s "$TEMPLATE" "$ROOT$ETC/config.yaml"; then
        rm -f "$ROOT$ETC/config.yaml.new"
    else
        install -m 0640 -o 0 -g "$GID" "$TEMPLATE" "$ROOT$ETC/config.yaml.new"
        say "kept $ETC/config.yaml; this version's example is $ETC/config.yaml.new (compare with diff)"
    fi
fi

say "checking $ETC/config.yaml with fleetmon $VERSION"
if ! check_config "$NEW"; then
    die "fleetmon $VERSION rejects $ETC/config.yaml (problems above): upgrade aborted, nothing switched" \
        "(still $OPT/venv -> releases/$(current_release venv)). Fix the config and run install.sh again."
fi

# --- switch ------------------------------------------------------------------------------------

OLD="$(current_release venv)"
point venv "$NAME"
SWITCHED=1
if [ -n "$OLD" ] && [ "$OLD" != "$NAME" ]; then
    point venv.previous "$OLD"
fi
KEEP="$(current_release venv.previous)"
for dir in "$ROOT$OPT/releases/"*; do
    base="$(basename "$dir")"
    if [ -d "$dir" ] && [ "$base" != "$NAME" ] && [ "$base" != "$KEEP" ]; then
        rm -rf "$dir"
        say "removed old release $base"
    fi
done
install -m 0644 -o 0 -g 0 "$SRC/deploy/fleetmon.service" "$ROOT$UNIT"
install -m 0644 -o 0 -g 0 "$SRC/deploy/fleetmon-backup.service" "$SRC/deploy/fleetmon-backup.timer" "$ROOT/etc/systemd/system/"
# The probe agent's unit, for the sites' agent machines: installed, never enabled here.
install -m 0644 -o 0 -g 0 "$SRC/deploy/fleetmon-agent.service" "$ROOT/etc/systemd/system/"
# `fleetmon` on root's PATH (check-config, probe icmp), unless something else holds the name.
BIN=/usr/local/bin/fleetmon
if [ ! -e "$ROOT$BIN" ] || [ "$(readlink "$ROOT$BIN" || true)" = "$OPT/venv/bin/fleetmon" ]; then
    install -d -m 0755 "$ROOT/usr/local/bin"
    ln -sfn "$OPT/venv/bin/fleetmon" "$ROOT$BIN"
else
    say "$BIN exists and is not install.sh's symlink: left alone"
fi
say "fleetmon $VERSION installed: $OPT/venv -> releases/$NAME${KEEP:+ (previous: releases/$KEEP)}"

if [ "$FIRST" -eq 1 ]; then
    # The example config names example devices: start only once it describes the real fleet.
    systemd_apply none
    say "next: edit $ETC/config.yaml and the point lists, check them with" \
        "'fleetmon check-config $ETC/config.yaml', then 'systemctl start fleetmon'"
else
    systemd_apply restart
fi
