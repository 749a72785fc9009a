#!/usr/bin/env bash
# `jvpn timeline` against a running client: a link flap (two switches) and a blackholed standby
# uplink, then the picture. Its SVG is checked against the event log (one band per state, every
# switch marked with its reason and recovery_ms, RTT and loss lines for both paths from the
# daemon's probe history), rendered by headless Chromium to PNG and the PNG checked (size, not
# blank, the band and line colours present). Then the same from the event log alone, after down.
# TIMELINE_KEEP=DIR keeps the SVG and PNG there for a look.
. "$(dirname "$0")/lib.bash"
command -v chromium >/dev/null 2>&1 || fail "chromium missing (deploy/install-deps.sh installs it)"
router_setup
step "a link flap on up0 and a 3 s blackhole of the standby up1"
sleep 2
flap link-down up0
wait_active up1 3 || fail "no switch to up1"
sleep 1
flap link-up up0
wait_active up0 5 || fail "no switch back to up0"
flap blackhole up1
sleep 3
flap unblackhole up1
sleep 3

step "status --json --history: per-path probe_history"
hist="$(rig_exec "$RIG_CLIENT" "$JVPN_BIN" status "$CL" --json --history)" || fail "status --json --history"
python3 - "$hist" <<'PY' || fail "probe_history is wrong"
import json, sys
paths = json.loads(sys.argv[1])["sessions"][0]["paths"]
assert sorted((p["uplink"], p["transport"]) for p in paths) == [("up0", "tcp"), ("up0", "udp"), ("up1", "tcp"), ("up1", "udp")]
for p in paths:
    h = p["probe_history"]
    # up0's TCP connection went down with its link and was opened again after it: less history.
    assert len(h) >= (8 if p["transport"] == "udp" else 3), "%s: %d seconds of history" % (p["path"], len(h))
    for t, sent, answered, rtt, rtt_max in h:
        assert 0 <= answered <= sent and (rtt is None) == (answered == 0) and (rtt is None or rtt <= rtt_max), (t, sent, answered, rtt, rtt_max)
    t = [row[0] for row in h]
    assert all(b > a and (b - a) % 1000 == 0 for a, b in zip(t, t[1:])), "rows are whole seconds apart, oldest first"
    print("    %s: %d s, %d probes, %d answered" % (p["path"], len(h), sum(r[1] for r in h), sum(r[2] for r in h)))
PY
[[ "$(rig_exec "$RIG_CLIENT" "$JVPN_BIN" status "$CL" --json)" != *probe_history* ]] || fail "plain status --json carries the history"

step "jvpn timeline (daemon running)"
svg="$RIG_DIR/timeline.svg"
out="$(rig_exec "$RIG_CLIENT" "$JVPN_BIN" timeline "$CL" -o "$svg")" || fail "jvpn timeline failed"
echo "    $out"
rig_exec "$RIG_CLIENT" "$JVPN_BIN" timeline "$CL" -o "$RIG_DIR/timeline.html" >/dev/null || fail "timeline -o .html failed"
python3 - "$svg" "$CL_EVENTS" "$RIG_DIR/timeline.html" <<'PY' || fail "the SVG does not match the event log"
import json, sys, xml.etree.ElementTree as ET
text = open(sys.argv[1]).read()
for bad in ("<script", "href", "url(", "<image", "@import"):
    assert bad not in text, "not self-contained: %s" % bad
page = open(sys.argv[3]).read()
assert page.startswith("<!DOCTYPE html>") and "<svg xmlns" in page and "</svg>" in page and "<script" not in page, "HTML page"
root = ET.fromstring(text)
ns = "{http://www.w3.org/2000/svg}"
events = [json.loads(l) for l in open(sys.argv[2])]
changes = [e for e in events if e["event"] == "STATE_CHANGE"]
switches = [e for e in events if e["event"] == "TRANSPORT_SWITCH"]
bands = [r for r in root.iter(ns + "rect") if r.get("class") == "band"]
assert [b.get("data-state") for b in bands] == [changes[0]["from"]] + [c["to"] for c in changes], \
    ([b.get("data-state") for b in bands], [c["to"] for c in changes])
marks = [g for g in root.iter(ns + "g") if g.get("class") == "switch"]
assert len(switches) == 2 and sum(int(g.get("data-count")) for g in marks) == 2, (len(switches), len(marks))
for g, e in zip(marks, switches):
    title = g.find(ns + "title").text
    assert "%s, recovery_ms %d" % (e["reason"], e["recovery_ms"]) in title, title
    assert e["from_path"] in title and e["to_path"] in title, title
for cls in ("rtt", "loss"):
    lines = [g for g in root.iter(ns + "g") if g.get("class") == cls]
    # A UDP and a TCP path per uplink.
    assert sorted(g.get("data-path").split("/")[0] for g in lines) == ["up0", "up0", "up1", "up1"], [g.get("data-path") for g in lines]
    for g in lines:
        pts = sum(len(p.get("points").split()) for p in g.iter(ns + "polyline"))
        assert pts >= 5, "%s line of %s has %d points" % (cls, g.get("data-path"), pts)
# The blackholed standby lost probes: its loss line leaves zero (y of 0 % is the line's lowest point).
up1 = [g for g in root.iter(ns + "g") if g.get("class") == "loss" and g.get("data-path").startswith("up1/")
       and "/tcp/" not in g.get("data-path")][0]
ys = [float(p.split(",")[1]) for pl in up1.iter(ns + "polyline") for p in pl.get("points").split()]
assert max(ys) - min(ys) > 20, "up1's loss line stays flat through its blackhole: %s" % sorted(set(ys))
print("    SVG: %d bands, %d switch marks, rtt and loss lines for up0 and up1" % (len(bands), len(marks)))
PY
[[ "$out" == *"2 switches"* ]] || fail "unexpected summary: $out"

step "headless Chromium renders it"
height=$(python3 -c 'import sys,re; print(int(float(re.search(r"height=\"([0-9.]+)\"", open(sys.argv[1]).read()).group(1))))' "$svg")
png="$RIG_DIR/timeline.png"
timeout 60 chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --user-data-dir="$RIG_DIR/chromium" \
    --window-size="1200,$height" --screenshot="$png" "file://$svg" >"$RIG_DIR/chromium.log" 2>&1 || fail "chromium failed: $(tail -5 "$RIG_DIR/chromium.log")"
# Path colours in status order: up0's UDP path, up0's TCP path, up1's UDP path, up1's TCP path. The
# UDP paths' lines are checked: a TCP path's connection may come up late (after the flap) and its
# line is short.
whole="$(python3 "$TEST_DIR/png_colors.py" "$png" '#283593' '#1f77b4' '#17becf')" || fail "cannot read $png"
# The band row alone (below the legend, whose swatches have the same colours).
band_y=$(python3 -c 'import sys,re; print(int(float(re.search(r"class=\"band\"[^>]* y=\"([0-9.]+)\"", open(sys.argv[1]).read()).group(1))))' "$svg")
row="$(python3 "$TEST_DIR/png_colors.py" "$png" --rows "$band_y:$((band_y + 20))" '#2e9e44' '#f08a24')" || fail "cannot read $png"
echo "    PNG: $whole"
echo "    band row: $row"
python3 - "$whole" "$row" "$height" <<'PY' || fail "the PNG does not show the timeline"
import json, sys
s, row = json.loads(sys.argv[1]), json.loads(sys.argv[2])
assert (s["width"], s["height"]) == (1200, int(sys.argv[3])), "size %dx%d" % (s["width"], s["height"])
assert 0.5 < s["white_fraction"] < 0.99 and s["distinct_colours"] > 50, "blank or flat picture"
assert row["near"]["#2e9e44"] > 20 * 600, "ATTACHED band missing"
assert row["near"]["#f08a24"] >= 2 * 20, "the two RECOVERING slivers missing"
assert s["near"]["#283593"] > 20, "switch marks missing"
assert s["near"]["#1f77b4"] > 50 and s["near"]["#17becf"] > 50, "path lines missing"
PY
[[ -n "${TIMELINE_KEEP:-}" ]] && cp "$svg" "$png" "$TIMELINE_KEEP"/

step "bad input: unknown session, bad --since, bad output name"
rc=0; rig_exec "$RIG_CLIENT" "$JVPN_BIN" timeline "$CL" --session feedfeedfeedfeed -o "$RIG_DIR/x.svg" 2>"$RIG_DIR/err" || rc=$?
[[ $rc == 2 ]] && rig_output_has "no event of session feedfeedfeedfeed" cat "$RIG_DIR/err" || fail "unknown session: exit $rc, $(cat "$RIG_DIR/err")"
rc=0; rig_exec "$RIG_CLIENT" "$JVPN_BIN" timeline "$CL" --since yesterday -o "$RIG_DIR/x.svg" 2>/dev/null || rc=$?
[[ $rc == 2 ]] || fail "--since yesterday: exit $rc"
rc=0; rig_exec "$RIG_CLIENT" "$JVPN_BIN" timeline "$CL" -o "$RIG_DIR/x.png" 2>/dev/null || rc=$?
[[ $rc == 2 ]] || fail "-o x.png: exit $rc"

step "after down: from the event log alone"
rig_exec "$RIG_CLIENT" "$JVPN_BIN" down "$CL" || fail "down"
out="$(rig_exec "$RIG_CLIENT" "$JVPN_BIN" timeline "$CL" --event-log "$CL_EVENTS" -o "$RIG_DIR/after.svg")" || fail "timeline after down"
[[ "$out" == *"event log only"* ]] || fail "summary does not say it is the log alone: $out"
python3 - "$RIG_DIR/after.svg" <<'PY' || fail "the log-only SVG is wrong"
import sys, xml.etree.ElementTree as ET
ns = "{http://www.w3.org/2000/svg}"
root = ET.parse(sys.argv[1]).getroot()
states = [r.get("data-state") for r in root.iter(ns + "rect") if r.get("class") == "band"]
assert states[-1] == "TERMINATED", states
assert not [g for g in root.iter(ns + "g") if g.get("class") in ("rtt", "loss")], "RTT lines without a daemon"
assert "the daemon is not running" in open(sys.argv[1]).read()
PY
pass "SVG matches the log, Chromium renders it"
