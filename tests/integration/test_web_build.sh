#!/usr/bin/env bash
# test_web_build.sh — one build, one UI (issue #12, point 8). Builds coaphub exactly as README's
# "Building by hand" says (a fresh `cmake -S . -B DIR` with no options, then `cmake --build`,
# here of the daemon's target only), starts that binary, and loads what the UI loads: index.html,
# then every script, stylesheet, icon and vendor file it names, and every module those import or
# fetch (import ... from, import(), new URL(..., import.meta.url), CSS url()). Each must be
# served 200 with the content type of its kind. Then the same crawl against the binary the rest
# of the suite tests ($COAPHUB_BIN, built by scripts/test.sh with sanitizers) must find the very
# same files with the same ETags (a hash of their bytes): two documented ways to build, one UI.
#
# It fails when it would prove nothing: the crawl must reach every vendor file web/package.json
# lists and every script and stylesheet in web/ (one it misses is dead, or loaded in a way this
# crawl does not read; teach it). The fresh build reuses web/node_modules (nothing is
# downloaded) and takes about 10 s on 2 cores.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

need cmake
SRC=${COAPHUB_SRC:?COAPHUB_SRC must point at the source tree}
SUITE_BIN=$COAPHUB_BIN

# ---- the README's build, in an empty folder -------------------------------------------------
t0=$(date +%s)
cmake -S "$SRC" -B "$IT_TMP/build" >"$IT_TMP/build.log" 2>&1 ||
    { tail -n 30 "$IT_TMP/build.log" >&2; fail "configure as README says failed"; }
cmake --build "$IT_TMP/build" -j2 --target coaphub >>"$IT_TMP/build.log" 2>&1 ||
    { tail -n 30 "$IT_TMP/build.log" >&2; fail "build as README says failed"; }
log "README build of coaphub: $(($(date +%s) - t0)) s"
[ -x "$IT_TMP/build/coaphub" ] || fail "the README build made no build/coaphub"

# crawl OUT: every asset the UI loads from $BASE_URL, one JSON line each
crawl() {
    python3 - "$BASE_URL" "$SRC/web" >"$1" <<'PY' || fail "crawl of $BASE_URL failed"
import html.parser, json, os, re, sys, urllib.error, urllib.parse, urllib.request

base, web = sys.argv[1], sys.argv[2]
# What the daemon must answer for each kind of file (src/web/embed.c's table, written again
# here on purpose: a wrong entry there must not make this test agree with it).
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png",
         ".ico": "image/x-icon", ".json": "application/json", ".woff2": "font/woff2"}
JS_REFS = [r"""\bimport\s+(?:[\w*{}\s,$]+?\s+from\s+)?['"]([^'"]+)['"]""",
           r"""\bexport\s+[\w*{}\s,$]+?\s+from\s+['"]([^'"]+)['"]""",
           r"""\bimport\(\s*['"]([^'"]+)['"]\s*\)""",
           r"""\bnew\s+URL\(\s*['"]([^'"]+)['"]\s*,\s*import\.meta\.url\s*\)"""]
CSS_REFS = [r"""url\(\s*['"]?([^'")]+?)['"]?\s*\)""", r"""@import\s+['"]([^'"]+)['"]"""]

class Page(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs = []
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("script", "img", "source") and a.get("src"):
            self.refs.append(a["src"])
        elif tag == "link" and a.get("href"):
            self.refs.append(a["href"])

def refs_of(url, ctype, body):
    text = body.decode("utf-8", "replace")
    if ctype.startswith("text/html"):
        p = Page(); p.feed(text); found = p.refs
    elif ctype.startswith("text/javascript"):
        # Third-party bundles (static/vendor/) load nothing; their minified text is not ours
        # to read for import-like strings.
        if "/static/vendor/" in url:
            return []
        found = [m for pat in JS_REFS for m in re.findall(pat, text)]
    elif ctype.startswith("text/css"):
        found = [m for pat in CSS_REFS for m in re.findall(pat, text)]
    else:
        found = []
    return [r for r in found if not r.startswith("data:")]

seen, todo, out, bad = {}, [base + "/"], [], []
while todo:
    url = todo.pop(0)
    if url in seen:
        continue
    u = urllib.parse.urlsplit(url)
    if f"{u.scheme}://{u.netloc}" != base:
        bad.append(f"{url}: not this server (the CSP forbids it)")
        seen[url] = True
        continue
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            status, headers, body = r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        status, headers, body = e.code, e.headers, b""
    ctype = headers.get("Content-Type", "")
    etag = headers.get("ETag", "") if status == 200 else ""
    seen[url] = True
    path = u.path
    ext = os.path.splitext(path if path != "/" else "/index.html")[1]
    want = TYPES.get(ext)
    if status != 200:
        bad.append(f"{path}: HTTP {status}")
    elif want is None:
        bad.append(f"{path}: no known content type for '{ext}'")
    elif ctype != want:
        bad.append(f"{path}: Content-Type '{ctype}', want '{want}'")
    out.append({"path": path, "status": status, "type": ctype, "etag": etag, "bytes": len(body)})
    for ref in refs_of(url, ctype, body):
        todo.append(urllib.parse.urljoin(url, ref).split("#")[0])

# Not vacuous: the crawl must have reached every vendor file and every UI script and style.
vendor = json.load(open(os.path.join(web, "package.json")))["coaphub"]["vendor"]
expect = ["/static/vendor/" + n for n in vendor]
for d, _, files in os.walk(web):
    if "node_modules" in d:
        continue
    for f in files:
        if f.endswith((".js", ".css")):
            expect.append("/static/" + os.path.relpath(os.path.join(d, f), web))
got = {o["path"] for o in out}
for e in sorted(set(expect) - got):
    bad.append(f"{e}: never loaded by the crawl (dead file, or loaded in a way it does not read)")
for o in sorted(out, key=lambda o: o["path"]):
    print(json.dumps(o, sort_keys=True))
if bad:
    print("\n".join(bad), file=sys.stderr)
    sys.exit(1)
PY
}

# ---- the README binary serves every asset ---------------------------------------------------
COAPHUB_BIN=$IT_TMP/build/coaphub
daemon_start
crawl "$IT_TMP/readme.jsonl"
n=$(wc -l <"$IT_TMP/readme.jsonl")
log "README build serves all $n assets the UI loads: $(jq -r .path "$IT_TMP/readme.jsonl" | xargs)"
vendor=$(jq -r 'select(.path | startswith("/static/vendor/")).path' "$IT_TMP/readme.jsonl" | xargs)
assert_match "$vendor" 'uPlot\.iife\.min\.js' "the chart library is served"
daemon_stop

# ---- the suite's binary serves the same bytes -----------------------------------------------
COAPHUB_BIN=$SUITE_BIN
daemon_start
crawl "$IT_TMP/suite.jsonl"
diff -u "$IT_TMP/readme.jsonl" "$IT_TMP/suite.jsonl" >&2 ||
    fail "the README build and $SUITE_BIN serve different UI files"
log "ok: $SUITE_BIN serves the same $n files, byte for byte (ETags)"
it_pass
