#!/bin/sh
# Let one user run /usr/bin/powermetrics (and nothing else) through sudo without a password, so that
# energyprof can start it with `sudo -n`. It writes /etc/sudoers.d/energyprof-powermetrics:
#     Cmnd_Alias ENERGYPROF_POWERMETRICS = /usr/bin/powermetrics -f plist -i [1-9][0-9] --samplers ...
#     <user> ALL=(root) NOPASSWD: ENERGYPROF_POWERMETRICS
# The alias lists the exact command lines energyprof runs (plist output, an interval of 10-9999 ms,
# the cpu/gpu/thermal samplers), so the rule cannot be used for anything else (e.g. -o FILE, which
# would write FILE as root). It is checked with `visudo -cf` before it is installed (mode 0440).
# Running it twice changes nothing.
#
#   sudo scripts/setup_powermetrics.sh              install the rule for the user who ran sudo
#   sudo scripts/setup_powermetrics.sh --uninstall  remove it
#   scripts/setup_powermetrics.sh --print           print the rule without installing anything
#   options: --user NAME (default: $SUDO_USER, else `id -un`), --force (run on a system that is not macOS)
set -eu

RULE_FILE=/etc/sudoers.d/energyprof-powermetrics
POWERMETRICS=/usr/bin/powermetrics

die() { echo "setup_powermetrics: $*" >&2; exit 1; }

mode=install
force=0
user=${SUDO_USER:-}
while [ $# -gt 0 ]; do
    case $1 in
        --print) mode=print ;;
        --uninstall) mode=uninstall ;;
        --force) force=1 ;;
        --user) [ $# -ge 2 ] || die "--user needs a user name, e.g. --user $(id -un)."; user=$2; shift ;;
        -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option $1; use --print, --uninstall, --user NAME or --force." ;;
    esac
    shift
done

rule_line() {
    [ -n "$user" ] || user=$(id -un)
    case $user in
        ''|-*|*[!A-Za-z0-9._-]*) die "'$user' is not a plain user name; pass --user NAME with your login name." ;;
    esac
    [ "$user" != root ] || die "root needs no sudo rule; run this with sudo from your own account (sudo $0) or pass --user NAME."
    [ "$user" != ALL ] || die "ALL would let every user run powermetrics as root; pass --user NAME with one login name."
    args="--samplers cpu_power\\,gpu_power\\,thermal -b 0"
    line="Cmnd_Alias ENERGYPROF_POWERMETRICS = \\
    $POWERMETRICS -f plist -i [1-9][0-9] $args, \\
    $POWERMETRICS -f plist -i [1-9][0-9][0-9] $args, \\
    $POWERMETRICS -f plist -i [1-9][0-9][0-9][0-9] $args, \\
    $POWERMETRICS -f plist -i 50 $args -n 1
$user ALL=(root) NOPASSWD: ENERGYPROF_POWERMETRICS"
}

if [ "$mode" = print ]; then
    rule_line
    printf '%s\n' "$line"
    exit 0
fi
[ "$(uname -s)" = Darwin ] || [ "$force" = 1 ] || die "powermetrics exists only on macOS; nothing to set up here (use --force to write the rule anyway)."
[ "$(id -u)" = 0 ] || die "writing $RULE_FILE needs root; run: sudo $0 $*"

if [ "$mode" = uninstall ]; then
    rm -f "$RULE_FILE"
    echo "removed $RULE_FILE"
    exit 0
fi

rule_line
id -u "$user" >/dev/null 2>&1 || die "there is no user named '$user' here; pass --user NAME with your login name."
[ -d /etc/sudoers.d ] || die "/etc/sudoers.d does not exist; this sudo does not read a sudoers.d folder."
tmp=$(mktemp /etc/sudoers.d/.energyprof-powermetrics.XXXXXX)  # the dot keeps sudo from reading it
trap 'rm -f "$tmp"' EXIT
printf '%s\n' "$line" > "$tmp"
chmod 0440 "$tmp"
visudo -cf "$tmp" >/dev/null || die "visudo rejected the rule; nothing was installed."
if [ -f "$RULE_FILE" ] && cmp -s "$tmp" "$RULE_FILE"; then
    echo "already installed: $RULE_FILE"
    exit 0
fi
mv -f "$tmp" "$RULE_FILE"
trap - EXIT
echo "installed $RULE_FILE:"; printf '%s\n' "$line"
