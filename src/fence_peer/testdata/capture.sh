#!/bin/bash
# Regenerates the fence-peer --pacemaker fixtures: from the hand-written
# cib-online.xml (the lab's example-drbd-fs-ip.xml stack, nodes nodeA and
# nodeB, both online members, quorum, DC nodeA) it derives CIBs whose status
# section says nodeB is unclean, fenced, lost without STONITH, or that the
# partition has no quorum, and captures Pacemaker's real answers to each:
# `crm_mon --output-as=xml -1` (crm_mon-*.xml), and `cibadmin -Q` after
# `cibadmin --create` of the handler's constraint (cib-constrained.xml).
# Needs pacemaker-cli-utils (cibadmin, crm_mon). Run from anywhere.
set -euo pipefail
cd "$(dirname "$0")"
for t in cibadmin crm_mon; do command -v "$t" >/dev/null || { echo "FATAL: $t missing (apt-get install pacemaker-cli-utils)" >&2; exit 1; }; done
on='<node_state id="2" uname="nodeB" in_ccm="true" crmd="online" crm-debug-origin="do_state_transition" join="member" expected="member"/>'
lost='<node_state id="2" uname="nodeB" in_ccm="false" crmd="offline" crm-debug-origin="post_cache_update" join="down" expected="member"/>'
fenced='<node_state id="2" uname="nodeB" in_ccm="false" crmd="offline" crm-debug-origin="send_stonith_update" join="down" expected="down"/>'
grep -qF "$on" cib-online.xml
sub() { python3 -c 'import sys; s=open(sys.argv[1]).read(); print(s.replace(sys.argv[2], sys.argv[3]), end="")' "$@"; }
sub cib-online.xml "$on" "$lost" >cib-unclean.xml
sub cib-online.xml "$on" "$fenced" >cib-fenced.xml
sub cib-unclean.xml 'name="stonith-enabled" value="true"' 'name="stonith-enabled" value="false"' >cib-nostonith.xml
sub cib-unclean.xml 'have-quorum="1"' 'have-quorum="0"' >cib-noquorum.xml
sub cib-online.xml "$on" '' >cib-unseen.xml
for f in online unclean fenced nostonith noquorum unseen; do
  CIB_file="$PWD/cib-$f.xml" crm_mon --output-as=xml -1 | grep -v '<last_update ' >"crm_mon-$f.xml"
done
cp cib-online.xml cib-constrained.xml
CIB_file="$PWD/cib-constrained.xml" cibadmin --create -o constraints --xml-text \
  '<rsc_location rsc="drbd-r0-clone" id="drbd-fence-by-handler-r0-drbd-r0-clone"><rule role="Promoted" score="-INFINITY" id="drbd-fence-by-handler-r0-rule-drbd-r0-clone"><expression attribute="#uname" operation="ne" value="nodeA" id="drbd-fence-by-handler-r0-expr-0-drbd-r0-clone"/></rule></rsc_location>'
CIB_file="$PWD/cib-constrained.xml" cibadmin -Q >cib-constrained.q.xml
mv cib-constrained.q.xml cib-constrained.xml
CIB_file="$PWD/cib-constrained.xml" crm_mon --output-as=xml -1 | grep -v '<last_update ' >crm_mon-constrained.xml
echo captured: crm_mon-*.xml cib-*.xml
