#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Check what sp_results_write_trace() and sp_results_write_svg() wrote,
with real parsers (json, xml.etree), against the schema in
include/simplepar.h.

  check-trace.py trace FILE [--tasks N] [--expect SPEC]...
  check-trace.py svg FILE [--tasks N] [--expect SPEC]...
  check-trace.py demo PROGRAM

SPEC describes one entry of the map as the test read it through the
accessors: INDEX:KIND:CODE:RESULT_BYTES:WORKER:KEYHEX:MSGHEX:ATTEMPTS:
FIRST_KIND:FIRST_CODE:FIRST_MSGHEX:CANCEL_REASON:EARLIER (WORKER -1 for a
task that never ran; the HEX fields the raw bytes in hex; CANCEL_REASON as
sp_cancel_reason_name() spells it, NONE for none; EARLIER the earlier
attempts, "KIND/CODE/WORKER/MSGHEX" each, joined by ",", or "-"). "demo" runs
the branch-fetch demo with --trace and --svg (parallel and sequential) and
checks one event per fetched branch. Exit status 0 when every check holds;
otherwise the failures go to stderr and the status is 1.
"""
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

SVG_NS = "{http://www.w3.org/2000/svg}"
KINDS = {"OK", "FAILED", "CRASHED", "TIMED_OUT", "CANCELLED", "SKIPPED"}
REASONS = {"DEADLINE", "FAIL_FAST", "ON_DONE", "DEPENDENCY", "BACKEND",
           "CALLER"}
RETRIED = {"FAILED", "CRASHED", "TIMED_OUT"}  # what an earlier attempt is
errors = []


def fail(msg):
    errors.append(msg)


def utf8_replace(raw):
    """What the library promises for text that is not valid UTF-8."""
    return raw.decode("utf-8", errors="replace")


def xml_text(raw):
    """Text as the SVG holds it: UTF-8 as above, then whatever XML 1.0
    cannot carry (controls other than tab, LF, CR; U+FFFE, U+FFFF) as
    U+FFFD."""
    return re.sub("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]", "\ufffd",
                  utf8_replace(raw))


def parse_specs(specs):
    out = {}
    for spec in specs:
        (index, kind, code, nbytes, worker, keyhex, msghex, attempts,
         first_kind, first_code, first_hex, reason, earlier) = spec.split(":")
        past = []
        for one in ([] if earlier == "-" else earlier.split(",")):
            k, c, w, m = one.split("/")
            past.append({"kind": k, "code": int(c), "worker": int(w),
                         "message": bytes.fromhex(m)})
        out[int(index)] = {
            "kind": kind, "code": int(code), "result_bytes": int(nbytes),
            "worker": int(worker), "key": bytes.fromhex(keyhex),
            "message": bytes.fromhex(msghex), "attempts": int(attempts),
            "first_kind": first_kind, "first_code": int(first_code),
            "first_message": bytes.fromhex(first_hex), "reason": reason,
            "earlier": past}
    return out


def is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) \
        and math.isfinite(v)


def check_trace(path, tasks=None, expect=None):
    """Returns the task events by index."""
    def no_duplicates(pairs):
        keys = [k for k, _ in pairs]
        if len(set(keys)) != len(keys):
            fail("an object repeats a member: %r" % keys)
        return dict(pairs)

    with open(path, "rb") as f:  # strict: must be UTF-8 and JSON
        doc = json.loads(f.read().decode("utf-8"),
                         object_pairs_hook=no_duplicates)
    if not isinstance(doc, dict):
        fail("top level is not an object")
        return {}
    if doc.get("displayTimeUnit") != "ms":
        fail("displayTimeUnit is not \"ms\"")
    other = doc.get("otherData")
    if not isinstance(other, dict):
        fail("no otherData object")
        other = {}
    if other.get("schema") != "simplepar-trace" or \
            other.get("schema_version") != 1:
        fail("otherData does not name schema simplepar-trace version 1: %r"
             % other)
    for field in ("tasks", "workers", "ok", "failed"):
        if not isinstance(other.get(field), int) or other[field] < 0:
            fail("otherData.%s is not a count" % field)
    if not is_num(other.get("elapsed_us")) or other["elapsed_us"] < 0:
        fail("otherData.elapsed_us is not a time")
    if not str(other.get("library", "")).startswith("simplepar "):
        fail("otherData.library does not name simplepar")
    n = other.get("tasks", 0)
    if tasks is not None and n != tasks:
        fail("otherData.tasks is %r, expected %d" % (n, tasks))
    events = doc.get("traceEvents")
    if not isinstance(events, list):
        fail("traceEvents is not a list")
        return {}

    names = {}   # tid -> thread name
    by_index = {}
    earlier = {}  # index -> {attempt: event}, the earlier attempts
    for ev in events:
        if not isinstance(ev, dict):
            fail("an event is not an object: %r" % (ev,))
            continue
        ph = ev.get("ph")
        if ev.get("pid") != 1 or not isinstance(ev.get("tid"), int) \
                or ev["tid"] < 0:
            fail("event without pid 1 and a tid: %r" % ev)
            continue
        if ph == "M":
            if ev.get("name") == "thread_name":
                if ev["tid"] in names:
                    fail("track %d named twice" % ev["tid"])
                names[ev["tid"]] = ev.get("args", {}).get("name")
            elif ev.get("name") not in ("process_name", "thread_sort_index"):
                fail("unexpected metadata event %r" % ev)
            continue
        if ph not in ("X", "i"):
            fail("unexpected phase %r" % ev)
            continue
        args = ev.get("args")
        if not isinstance(args, dict):
            fail("task event without args: %r" % ev)
            continue
        if "attempt" in args:  # an earlier attempt of a task tried again
            for field, kind in (("index", int), ("attempt", int),
                                ("kind", str), ("code", int),
                                ("message", str)):
                if not isinstance(args.get(field), kind) \
                        or isinstance(args.get(field), bool):
                    fail("args.%s missing or of the wrong type: %r"
                         % (field, ev))
            if ph != "X" or not is_num(ev.get("ts")) or ev["ts"] < 0 \
                    or not is_num(ev.get("dur")) or ev["dur"] < 0:
                fail("an earlier attempt is not a slice: %r" % ev)
            if ev.get("cat") != args.get("kind") or \
                    args.get("kind") not in RETRIED:
                fail("an earlier attempt's kind is wrong: %r" % ev)
            if args.get("kind") == "CRASHED" and not (
                    isinstance(args.get("signal"), int)
                    and isinstance(args.get("exit_status"), int)):
                fail("CRASHED attempt without signal and exit_status: %r" % ev)
            seen = earlier.setdefault(args.get("index"), {})
            if args.get("attempt") in seen:
                fail("attempt %r of index %r twice" % (args.get("attempt"),
                                                       args.get("index")))
            seen[args.get("attempt")] = ev
            continue
        for field, kind in (("index", int), ("kind", str), ("code", int),
                            ("message", str), ("result_bytes", int)):
            if not isinstance(args.get(field), kind) \
                    or isinstance(args.get(field), bool):
                fail("args.%s missing or of the wrong type: %r" % (field, ev))
        if not isinstance(ev.get("name"), str):
            fail("task event without a name: %r" % ev)
        if ev.get("cat") != args.get("kind") or args.get("kind") not in KINDS:
            fail("cat and args.kind disagree or are no kind: %r" % ev)
        if not is_num(ev.get("ts")) or ev["ts"] < 0:
            fail("ts missing or negative: %r" % ev)
        if ph == "X":
            if not is_num(ev.get("dur")) or ev["dur"] < 0:
                fail("dur missing or negative: %r" % ev)
            elif is_num(ev.get("ts")) and is_num(other.get("elapsed_us")) \
                    and ev["ts"] + ev["dur"] > other["elapsed_us"] + 1:
                fail("task ends after the call: %r" % ev)
        else:
            if ev.get("s") != "t" or "dur" in ev:
                fail("instant event is not thread-scoped without dur: %r" % ev)
        if args.get("kind") == "CRASHED" and not (
                isinstance(args.get("signal"), int)
                and isinstance(args.get("exit_status"), int)):
            fail("CRASHED event without signal and exit_status: %r" % ev)
        # Every task says how many attempts it had; one tried more than
        # once also how the first ended; a task cancelled or skipped why.
        attempts = args.get("attempts")
        if not isinstance(attempts, int) or isinstance(attempts, bool) \
                or attempts < 0 or (attempts == 0) != (ph == "i"):
            fail("args.attempts missing, or not 0 exactly for a task that "
                 "never ran: %r" % ev)
        story = ("first_kind", "first_code", "first_message")
        if isinstance(attempts, int) and attempts > 1:
            if args.get("first_kind") not in KINDS or \
                    not isinstance(args.get("first_code"), int) or \
                    not isinstance(args.get("first_message"), str):
                fail("a task tried again without its first attempt: %r" % ev)
        elif any(f in args for f in story):
            fail("first_* on a task tried once: %r" % ev)
        cancelled = args.get("kind") in ("CANCELLED", "SKIPPED")
        if cancelled != ("cancel_reason" in args) or \
                (cancelled and args["cancel_reason"] not in REASONS):
            fail("cancel_reason missing, misplaced or unknown: %r" % ev)
        i = args.get("index")
        if i in by_index:
            fail("index %r appears twice" % i)
        by_index[i] = ev

    if sorted(by_index) != list(range(n)):
        fail("task indices are %r, expected 0..%d once each"
             % (sorted(by_index), n - 1))
    # Earlier attempts: 1 .. attempts - 1 of a task that has an event, each
    # on a worker's track, ending before the next attempt starts.
    for i, seen in earlier.items():
        task = by_index.get(i)
        if task is None:
            fail("earlier attempts of index %r, which has no event" % i)
            continue
        want = list(range(1, task["args"].get("attempts", 0)))
        if sorted(seen) != want:
            fail("index %r: earlier attempts %r, expected %r"
                 % (i, sorted(seen), want))
        chain = [seen[k] for k in sorted(seen)] + [task]
        for a, b in zip(chain, chain[1:]):
            if is_num(a.get("ts")) and is_num(b.get("ts")) and \
                    a["ts"] + a.get("dur", 0) > b["ts"] + 1e-6:
                fail("index %r: an attempt ends after the next starts" % i)
    # Tracks: every worker track is "worker N", the never-ran track is
    # "not started" and is no worker's.
    attempts = [ev for seen in earlier.values() for ev in seen.values()]
    for ev in list(by_index.values()) + attempts:
        tid = ev["tid"]
        want = "worker %d" % tid if ev["ph"] == "X" else "not started"
        if names.get(tid) != want:
            fail("event on track %d named %r, expected %r"
                 % (tid, names.get(tid), want))
    # A worker runs one task at a time: its slices never overlap, which
    # trace viewers need to draw them (they nest slices, never cross them).
    per_track = {}
    for ev in list(by_index.values()) + attempts:
        if ev["ph"] == "X" and is_num(ev.get("ts")) and is_num(ev.get("dur")):
            per_track.setdefault(ev["tid"], []).append(ev)
    for tid, evs in per_track.items():
        evs.sort(key=lambda ev: (ev["ts"], ev["dur"]))
        for a, b in zip(evs, evs[1:]):
            if a["ts"] + a["dur"] > b["ts"] + 1e-6:
                fail("tasks %r and %r overlap on worker %d"
                     % (a["name"], b["name"], tid))
    if other.get("ok") is not None and other.get("failed") is not None \
            and other["ok"] + other["failed"] != n:
        fail("otherData ok + failed != tasks")
    if other.get("ok") is not None and other["ok"] != sum(
            1 for ev in by_index.values() if ev["args"].get("kind") == "OK"):
        fail("otherData.ok does not count the OK events")

    for i, want in (expect or {}).items():
        ev = by_index.get(i)
        if ev is None:
            fail("no event for index %d" % i)
            continue
        args = ev["args"]
        checks = [
            ("name", ev.get("name"), utf8_replace(want["key"])),
            ("kind", args.get("kind"), want["kind"]),
            ("code", args.get("code"), want["code"]),
            ("message", args.get("message"), utf8_replace(want["message"])),
            ("result_bytes", args.get("result_bytes"), want["result_bytes"]),
            ("phase", ev.get("ph"), "i" if want["worker"] < 0 else "X"),
            ("attempts", args.get("attempts"), want["attempts"]),
            ("cancel_reason", args.get("cancel_reason"),
             None if want["reason"] == "NONE" else want["reason"]),
        ]
        if want["attempts"] > 1:
            checks += [
                ("first_kind", args.get("first_kind"), want["first_kind"]),
                ("first_code", args.get("first_code"), want["first_code"]),
                ("first_message", args.get("first_message"),
                 utf8_replace(want["first_message"])),
            ]
        if want["worker"] >= 0:
            checks.append(("tid", ev.get("tid"), want["worker"]))
        seen = earlier.get(i, {})
        checks.append(("earlier attempts", len(seen), len(want["earlier"])))
        for k, past in enumerate(want["earlier"], 1):
            a = seen.get(k)
            if a is None:
                continue  # counted above
            checks += [
                ("attempt %d kind" % k, a["args"].get("kind"), past["kind"]),
                ("attempt %d code" % k, a["args"].get("code"), past["code"]),
                ("attempt %d worker" % k, a.get("tid"), past["worker"]),
                ("attempt %d message" % k, a["args"].get("message"),
                 utf8_replace(past["message"])),
                ("attempt %d name" % k, a.get("name"), ev.get("name")),
            ]
        for what, got, exp in checks:
            if got != exp:
                fail("index %d: %s is %r, expected %r" % (i, what, got, exp))
    return by_index


def check_svg(path, tasks=None, expect=None):
    """Returns the bar elements by index."""
    root = ET.parse(path).getroot()  # raises on XML that is not well-formed
    if root.tag != SVG_NS + "svg":
        fail("root element is %r, not svg" % root.tag)
    by_index = {}
    attempts = {}  # index -> {attempt: element}
    for el in root.iter():
        cls = el.get("class")
        if cls == "attempt":
            i = int(el.get("data-index", "-1"))
            k = int(el.get("data-attempt", "0"))
            if k < 1 or k in attempts.get(i, {}):
                fail("attempt element %r of index %d: bad or twice" % (k, i))
            attempts.setdefault(i, {})[k] = el
            title = el.find(SVG_NS + "title")
            if title is None or not title.text or \
                    (", attempt %d of " % k) not in title.text:
                fail("attempt %d of task %d: no tooltip naming it" % (k, i))
            continue
        if cls not in ("bar", "marker"):
            continue
        i = int(el.get("data-index", "-1"))
        if i in by_index:
            fail("data-index %d twice" % i)
        by_index[i] = el
        title = el.find(SVG_NS + "title")
        if title is None or not title.text:
            fail("task %d has no tooltip" % i)
        if cls == "bar":
            for attr in ("x", "y", "width", "height"):
                try:
                    if float(el.get(attr)) < 0:
                        fail("task %d: negative %s" % (i, attr))
                except (TypeError, ValueError):
                    fail("task %d: %s is not a number" % (i, attr))
    if tasks is not None and sorted(by_index) != list(range(tasks)):
        fail("SVG task indices are %r, expected 0..%d"
             % (sorted(by_index), tasks - 1))
    for i, want in (expect or {}).items():
        el = by_index.get(i)
        if el is None:
            fail("no SVG element for index %d" % i)
            continue
        title = el.find(SVG_NS + "title")
        text = title.text if title is not None and title.text else ""
        key = xml_text(want["key"])
        if not text.startswith(key + "\n" + want["kind"]):
            fail("index %d: tooltip %r does not start with key %r and kind %s"
                 % (i, text, key, want["kind"]))
        if want["message"] and not text.endswith(
                "\n" + xml_text(want["message"])):
            fail("index %d: tooltip %r does not end with the message" % (i, text))
        story = ", the last of %d attempts (the first %s, code %d)" % (
            want["attempts"], want["first_kind"], want["first_code"])
        if (story in text) != (want["attempts"] > 1):
            fail("index %d: tooltip %r and %d attempts disagree"
                 % (i, text, want["attempts"]))
        cls = "marker" if want["worker"] < 0 else "bar"
        if el.get("class") != cls:
            fail("index %d: drawn as %s, expected %s"
                 % (i, el.get("class"), cls))
        drawn = attempts.get(i, {})
        if sorted(drawn) != list(range(1, len(want["earlier"]) + 1)):
            fail("index %d: earlier attempts drawn %r, expected %d"
                 % (i, sorted(drawn), len(want["earlier"])))
        for k, past in enumerate(want["earlier"], 1):
            a = drawn.get(k)
            title = a.find(SVG_NS + "title") if a is not None else None
            text = title.text if title is not None and title.text else ""
            if a is not None and not text.startswith(
                    key + "\n" + past["kind"] + " on worker %d" % past["worker"]):
                fail("index %d attempt %d: tooltip %r" % (i, k, text))
    if expect is None and attempts:
        for i in attempts:
            if i not in by_index:
                fail("attempts drawn for index %d, which has no bar" % i)
    return by_index


def check_demo(program):
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ([], ["--sequential"]):
            trace = os.path.join(tmp, "trace.json")
            svg = os.path.join(tmp, "timeline.svg")
            run = subprocess.run(
                [program, "--scale", "0.01", "--trace", trace, "--svg", svg]
                + mode, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                timeout=60)
            if run.returncode != 0:
                fail("%s exited with %d" % (program, run.returncode))
                continue
            out = run.stdout.decode()
            m = re.search(r"^Fetched (\d+) branches in [\d.]+s \([a-z]+, "
                          r"(\d+) tasks\)", out, re.M)
            block = re.search(r"^\[$.*?^\]$", out, re.M | re.S)
            if not m or not block:
                fail("no records or summary in the demo's output")
                continue
            uris = [r["branch_uri"] for r in json.loads(block.group(0))]
            n, tasks = int(m.group(1)), int(m.group(2))
            # One event per task of the call: the branches, and the bus
            # lookups and record tasks they spawned.
            events = check_trace(trace, tasks=tasks)
            names = set(ev.get("name") for ev in events.values())
            if not set(uris) <= names or len(uris) != n:
                fail("trace keys %r lack the fetched branches %r"
                     % (sorted(names), uris))
            if any(ev.get("ph") != "X" for ev in events.values()):
                fail("a task did not run")
            bars = check_svg(svg)
            if len(bars) < n:
                fail("the timeline has %d bars for %d branches"
                     % (len(bars), n))
            print("%s: %d task events, %d timeline bars"
                  % (" ".join(mode) or "parallel", n, len(bars)))


def main(argv):
    if len(argv) < 3 or argv[1] not in ("trace", "svg", "demo"):
        print(__doc__, file=sys.stderr)
        return 2
    mode, path, rest = argv[1], argv[2], argv[3:]
    tasks, specs = None, []
    while rest:
        opt = rest.pop(0)
        if opt == "--tasks" and rest:
            tasks = int(rest.pop(0))
        elif opt == "--expect" and rest:
            specs.append(rest.pop(0))
        else:
            print("unknown argument %r" % opt, file=sys.stderr)
            return 2
    expect = parse_specs(specs)
    try:
        if mode == "trace":
            got = check_trace(path, tasks, expect)
        elif mode == "svg":
            got = check_svg(path, tasks, expect)
        else:
            check_demo(path)
            got = None
    except (ValueError, ET.ParseError, OSError, subprocess.SubprocessError) \
            as e:
        fail("%s: %s" % (path, e))
    for msg in errors:
        print("check-trace: " + msg, file=sys.stderr)
    if errors:
        if mode == "demo":
            print("0 passed, 1 failed")
        return 1
    if mode == "demo":
        print("1 passed, 0 failed")
    else:
        print("%s: %d tasks checked" % (mode, len(got)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
