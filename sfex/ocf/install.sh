#!/bin/sh
#
# Install hapair's sfex command and its OCF agent ocf:hapair:sfex.
#
#   install.sh [--prefix PREFIX] [--ocf-root DIR] [--destdir DIR] SFEX_BINARY
#
#   SFEX_BINARY   the built sfex command (e.g. target/release/sfex)
#   --prefix      the command goes to PREFIX/sbin/sfex (default /usr)
#   --ocf-root    the agent goes to DIR/resource.d/hapair/sfex
#                 (default $OCF_ROOT, else /usr/lib/ocf)
#   --destdir     stage everything under DIR (packaging); the paths above
#                 are still the ones the installed agent refers to
#
# Both files get mode 0755.  Running it again with the same files changes
# nothing; a changed file is replaced atomically (a running `sfex lock` keeps
# its old binary).  When the command does not end up at /usr/sbin/sfex, the
# installed agent's default for its "binary" parameter is set to where it is.
#
# SPDX-License-Identifier: GPL-2.0-or-later

set -eu

prog=${0##*/}
here=$(cd "$(dirname "$0")" && pwd)
agent_src=$here/sfex

prefix=/usr
ocf_root=${OCF_ROOT:-/usr/lib/ocf}
destdir=

usage() {
	sed -n '5,13s/^# \{0,1\}//p' "$0"
}

die() {
	echo "$prog: $*" >&2
	exit 1
}

while [ $# -gt 0 ]; do
	case $1 in
	--prefix) [ $# -ge 2 ] || die "--prefix needs a value"; prefix=$2; shift 2 ;;
	--prefix=*) prefix=${1#*=}; shift ;;
	--ocf-root) [ $# -ge 2 ] || die "--ocf-root needs a value"; ocf_root=$2; shift 2 ;;
	--ocf-root=*) ocf_root=${1#*=}; shift ;;
	--destdir) [ $# -ge 2 ] || die "--destdir needs a value"; destdir=$2; shift 2 ;;
	--destdir=*) destdir=${1#*=}; shift ;;
	-h | --help) usage; exit 0 ;;
	--) shift; break ;;
	-*) usage >&2; die "unknown option $1" ;;
	*) break ;;
	esac
done
[ $# -eq 1 ] || { usage >&2; exit 1; }
binary_src=$1

case $prefix in /*) ;; *) die "--prefix must be an absolute path" ;; esac
case $ocf_root in /*) ;; *) die "--ocf-root must be an absolute path" ;; esac
if [ ! -f "$binary_src" ] || [ ! -x "$binary_src" ]; then
	die "$binary_src is not an executable file"
fi
[ -f "$agent_src" ] || die "agent $agent_src not found"
if [ -z "$destdir" ] && [ "$(id -u)" -ne 0 ]; then
	die "run as root (or stage with --destdir)"
fi

prefix=${prefix%/}
ocf_root=${ocf_root%/}
binary_dst=$prefix/sbin/sfex
agent_dst=$ocf_root/resource.d/hapair/sfex

tmp=
trap 'rm -f "$tmp"' EXIT

# put SRC DST: install SRC as DST, mode 0755, atomically, only if it differs.
put() {
	dst=$destdir$2
	mkdir -p "$(dirname "$dst")"
	if [ -f "$dst" ] && cmp -s "$1" "$dst"; then
		chmod 0755 "$dst"
		echo "unchanged: $dst"
		return 0
	fi
	tmp=$(mktemp "$dst.XXXXXX")
	cp "$1" "$tmp"
	chmod 0755 "$tmp"
	mv -f "$tmp" "$dst"
	tmp=
	echo "installed: $dst"
}

put "$binary_src" "$binary_dst"

if [ "$binary_dst" = /usr/sbin/sfex ]; then
	put "$agent_src" "$agent_dst"
else
	agent_tmp=$(mktemp)
	trap 'rm -f "$tmp" "$agent_tmp"' EXIT
	# The path must not contain the sed delimiter.
	case $binary_dst in *'|'*) die "prefix must not contain '|'" ;; esac
	sed "s|^OCF_RESKEY_binary_default=.*|OCF_RESKEY_binary_default=\"$binary_dst\"|" \
		"$agent_src" >"$agent_tmp"
	put "$agent_tmp" "$agent_dst"
fi
