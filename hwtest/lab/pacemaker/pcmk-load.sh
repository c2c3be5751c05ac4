#!/bin/bash
# pcmk-load.sh FILE.xml : load a CIB fragment (a <configuration> holding <resources>, <constraints>, optionally <rsc_defaults>,
# <op_defaults>) into the running lab cluster in ONE cibadmin --replace of the configuration section (so no resource runs
# before its constraints exist), after setting stonith-enabled=true and stonith-action=off. Sections absent from FILE are
# kept. Runs crm_verify -L after it and fails if that reports errors. PCMK_NODE picks the node to run on (default nodeA,
# nodeB if nodeA is down). Adapted from shared/lab/pacemaker/pcmk-load.sh.
set -eu
HERE=$(dirname "$(readlink -f "$0")"); LAB=$(dirname "$HERE")
# shellcheck source=SCRIPTDIR/../lab-common.sh
. "$LAB/lab-common.sh"
f=${1:?usage: $0 FILE.xml}; [ -r "$f" ] || { echo "cannot read $f" >&2; exit 2; }
P=$LAB_DIR/pacemaker; mkdir -p "$P"; cp "$f" "$P/load-fragment.xml"
R="$LAB/lab-run.sh"; node=${PCMK_NODE:-nodeA}
[ -f "$LAB_DIR/$node/ready" ] || node=nodeB
"$R" "$node" "crm_attribute -t crm_config -n stonith-enabled -v true && crm_attribute -t crm_config -n stonith-action -v off &&
  cibadmin -Q -o configuration > $P/current-config.xml"
/usr/bin/python3 - "$P/current-config.xml" "$P/load-fragment.xml" "$P/new-config.xml" <<'PY'
import sys, xml.etree.ElementTree as ET
cur = ET.parse(sys.argv[1]).getroot(); frag = ET.parse(sys.argv[2]).getroot()
if frag.tag != "configuration":
    sys.exit("fragment root must be <configuration>, not <%s>" % frag.tag)
for sec in frag:
    if not isinstance(sec.tag, str): continue
    if sec.tag in ("crm_config", "nodes"): sys.exit("fragment must not contain <%s>" % sec.tag)
    old = cur.find(sec.tag)
    if old is None: cur.append(sec)
    else: cur.insert(list(cur).index(old), sec); cur.remove(old)
ET.ElementTree(cur).write(sys.argv[3], encoding="unicode")
PY
"$R" "$node" "cibadmin --replace -o configuration --xml-file $P/new-config.xml &&
  echo loaded: \$(crm_resource --list-raw 2>/dev/null | tr '\\n' ' ') && crm_verify -L"
