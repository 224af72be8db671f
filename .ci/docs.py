"""The docs site's notebook processing, as `nbdev_docs` runs it before quarto, and a check of the processed pages.

    python .ci/docs.py                 # process every notebook into _proc/ (nbdev's proc_nbs), then check the pages
    python .ci/docs.py --no-process    # check the pages already in _proc/

Quarto is not needed: only its input is built and checked. The exit status is 1 on any problem:

* a cell that the processing executes (imports, `show_doc`, exported code) and that mixes an import with other code:
  nbdev runs it without the cells around it (nbdev warns, "Found cells containing imports and other code");
* an error while a notebook is processed (nbdev's proc_nbs raises it);
* in the processed pages: a link to a page or anchor that does not exist, whether nbdev made it from a backticked
  name (NbdevLookup, `_modidx.py`) or the notebook wrote it; a link into the repository (GitHub, Colab) to a file
  that does not exist; a backticked name in a `show_doc` signature (nbdev turns it into link markup that the code
  block shows as is); an error output or traceback; a temporary folder name; a log line, a warning, or a progress bar
  (on stderr, or any output with a carriage return) left in an output.
"""
import argparse
import configparser
import posixpath
import re
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def settings() -> configparser.SectionProxy:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "settings.ini", encoding="utf-8")
    return cfg["DEFAULT"]


# ---------------------------------------------------------------------------------------------------------------------
# before processing: cells that nbdev would run out of their context

def mixed_cells(nb_path: Path) -> list:
    """Cells that nbdev's doc processing executes and that mix imports with other code, as 'notebook cell id: first line'.

    The notebook goes through nbdev's own processors up to `exec_show_docs`, then nbdev's `_do_eval` decides each cell,
    so the cells are exactly the ones `proc_nbs` would run."""
    from execnb.nbio import read_nb
    from nbdev.process import NBProcessor
    from nbdev.processors import FilterDefaults, _do_eval, exec_show_docs
    procs = list(FilterDefaults().procs())
    nb = read_nb(nb_path)
    NBProcessor(nb=nb, procs=procs[:procs.index(exec_show_docs)]).process()
    if not getattr(nb, "has_docs_", None): return []  # nothing of this notebook is executed
    found = []
    for cell in nb.cells:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            _do_eval(cell)
        if any("imports and other code" in str(w.message) for w in caught):
            first = next((l for l in cell.source.splitlines() if l.strip() and not l.startswith("#|")), "")
            found.append(f"{_shown(nb_path)} cell {cell.get('id', cell.idx_)}: {first.strip()[:80]}")
    return found


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def notebooks(nbs: Path) -> list:
    "The notebooks that proc_nbs processes (nbdev's default skips: names and folders starting with _ or .)."
    from nbdev.doclinks import nbglob
    return sorted(nbglob(nbs, func=Path, file_glob="*.ipynb"))


def process(nbs: Path, n_workers: int) -> Path:
    "nbdev's proc_nbs, everything again (force): an error in any notebook raises."
    from nbdev.serve import proc_nbs
    return proc_nbs(str(nbs), n_workers=n_workers, force=True)


# ---------------------------------------------------------------------------------------------------------------------
# after processing: the pages

_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*(?:\{([^}]*)\})?\s*#*\s*$")
# [text](target "title"), also ![alt](target); the text may hold one level of brackets ([`name`](url))
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HREF = re.compile(r"""\bhref\s*=\s*["']([^"']+)["']""")
_IDS = re.compile(r"""\{#([\w.:-]+)[^}]*\}|\bid\s*=\s*["']([^"']+)["']""")
_TMP = re.compile(r"(?<![\w.])(/tmp/|/var/folders/|\\Temp\\)\S*|\btmp[a-z0-9_]{8}\b")
_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d[,.]\d+\s+(DEBUG|INFO|WARNING)\b", re.M)
_BAR = re.compile(r"\d+%\|[^|\n]*\|\s*\d+/\d+")  # tqdm's bar: 40%|####      | 4/10
_WARNING = re.compile(r"\b\w*Warning: .*")  # a warning as Python prints it: path:line: SomeWarning: message


def nb_to_html(rel: str) -> str:
    "The page a notebook becomes (nbdev's rule: numbered prefixes dropped, lower case): 03_models.ipynb -> models.html."
    from nbdev.doclinks import _nbpath2html
    return _nbpath2html(Path(rel)).as_posix()


def pandoc_id(text: str) -> str:
    "The identifier pandoc (so quarto) gives a heading: formatting dropped, only letters, digits, _ - . kept, spaces to -."
    text = re.sub(r"!?\[((?:[^\[\]]|\[[^\]]*\])*)\]\([^)]*\)(\{[^}]*\})?", r"\1", text)  # a link keeps its text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").replace("*", "")
    text = "".join(ch for ch in text if ch.isalnum() or ch in "_-. \t\n")
    text = "-".join(text.split()).lower()
    text = re.sub(r"^[^a-z]+", "", text)  # nothing before the first letter
    return text or "section"


def _strip_fences(md: str) -> str:
    "Markdown without its fenced code blocks (links and headings there are text)."
    out, fenced = [], False
    for line in md.splitlines():
        if _FENCE.match(line): fenced = not fenced
        elif not fenced: out.append(line)
    return "\n".join(out)


def _fenced(md: str) -> list:
    "The lines inside fenced code blocks."
    out, fenced = [], False
    for line in md.splitlines():
        if _FENCE.match(line): fenced = not fenced
        elif fenced: out.append(line)
    return out


def _text(x) -> str:
    return "".join(x) if isinstance(x, list) else (x or "")


def _outputs(cell):
    return cell.get("outputs", []) if cell.get("cell_type") == "code" else []


def _markdowns(nb) -> list:
    "(where, markdown) of a page: its markdown cells and its markdown outputs (show_doc), in order."
    out = []
    for i, c in enumerate(nb["cells"]):
        if c["cell_type"] == "markdown": out.append((f"cell {i}", _text(c["source"])))
        for o in _outputs(c):
            md = o.get("data", {}).get("text/markdown")
            if md is not None: out.append((f"cell {i} output", _text(md)))
    return out


def anchors(nb) -> set:
    "The ids a page has: its headings' (as pandoc makes them, duplicates numbered), explicit {#id}, id=, cell labels."
    ids, seen = set(), {}
    for _, md in _markdowns(nb):
        for line in _strip_fences(md).splitlines():
            m = _HEADING.match(line)
            if m and not (m[3] and re.search(r"#[\w.:-]+", m[3])):
                base = pandoc_id(m[2])
                n = seen.get(base, 0); seen[base] = n + 1
                ids.add(base if n == 0 else f"{base}-{n}")
        ids.update(a or b for a, b in _IDS.findall(md))
    for c in nb["cells"]:
        if c["cell_type"] == "code":
            ids.update(re.findall(r"^#\|\s*label:\s*(\S+)", _text(c["source"]), re.M))
    return ids


class Site:
    "The processed pages, by the path of the HTML page each becomes."
    def __init__(self, proc: Path, nbs: Path, root: Path = ROOT, cfg=None):
        import json
        cfg = cfg or settings()
        self.proc, self.nbs, self.root = proc, nbs, root
        self.url = cfg["doc_host"].rstrip("/") + "/" + cfg["doc_baseurl"].strip("/") + "/"
        self.repo = f"{cfg['user']}/{cfg['repo']}"
        self.branch = cfg["branch"]
        self.pages = {}
        for p in sorted(proc.rglob("*.ipynb")):
            rel = p.relative_to(proc).as_posix()
            if any(part[0] in "._" for part in Path(rel).parts) or ".ipynb_checkpoints" in rel: continue
            self.pages[nb_to_html(rel)] = (rel, json.loads(p.read_text(encoding="utf-8")))
        self._anchors = {}

    def anchors(self, page: str) -> set:
        if page not in self._anchors: self._anchors[page] = anchors(self.pages[page][1])
        return self._anchors[page]

    def _page_link(self, page: str, frag: str, target: str) -> str | None:
        "None if the page and its anchor exist, else what is wrong."
        if page not in self.pages: return f"{target}: no page {page}"
        if frag and frag not in self.anchors(page): return f"{target}: {page} has no anchor #{frag}"
        return None

    def _repo_file(self, path: str, frag: str, target: str) -> str | None:
        f = self.root / path
        if not f.exists(): return f"{target}: no file {path} in the repository"
        m = re.fullmatch(r"L(\d+)", frag or "")
        if m and f.is_file() and int(m[1]) > len(f.read_text(encoding="utf-8", errors="replace").splitlines()):
            return f"{target}: {path} has no line {m[1]}"
        return None

    def check_link(self, page: str, target: str) -> str | None:
        "None if `target`, a link on `page`, points somewhere; else what is wrong with it."
        if target.startswith(("mailto:", "data:", "javascript:")): return None
        path, _, frag = target.partition("#")
        if target.startswith(self.url) or target + "/" == self.url:
            rest = path[len(self.url):] if target.startswith(self.url) else ""
            return self._page_link(rest or "index.html", frag, target)
        gh = re.match(rf"https://(?:github\.com/{re.escape(self.repo)}/(?:blob|tree|raw)/|"
                      rf"colab\.research\.google\.com/github/{re.escape(self.repo)}/blob/|"
                      rf"raw\.githubusercontent\.com/{re.escape(self.repo)}/)([^/]+)/(.+)$", path)
        if gh:
            if gh[1] != self.branch: return f"{target}: branch {gh[1]}, not {self.branch}"
            return self._repo_file(gh[2], frag, target)
        if re.match(r"^[a-z][a-z0-9+.-]*:", target): return None  # another site: not checked (no network)
        if not path: return self._page_link(page, frag, target)  # #anchor on this page
        rel = posixpath.normpath(posixpath.join(posixpath.dirname(self.pages[page][0]), path))
        if rel.endswith(".ipynb"): return self._page_link(nb_to_html(rel), frag, target)
        if rel.endswith(".html"): return self._page_link(rel, frag, target)
        if rel.startswith("../") or not (self.nbs / rel).exists(): return f"{target}: no file nbs/{rel}"
        return None

    def problems(self) -> list:
        "Everything wrong with the pages, one line each."
        out = []
        for page, (rel, nb) in self.pages.items():
            for where, md in _markdowns(nb):
                outside = _strip_fences(md)
                for target in _LINK.findall(outside) + _HREF.findall(outside):
                    bad = self.check_link(page, target)
                    if bad: out.append(f"{rel} {where}: broken link {bad}")
                if where.endswith("output"):
                    for line in _fenced(md):
                        if _LINK.search(line):
                            out.append(f"{rel} {where}: link markup in a signature (a backticked name in a comment): {line.strip()[:100]}")
            for i, c in enumerate(nb["cells"]):
                for o in _outputs(c):
                    if o.get("output_type") == "error":
                        out.append(f"{rel} cell {i}: error output {o.get('ename')}: {o.get('evalue')}")
                    texts = [_text(o.get("text"))] + [_text(v) for k, v in o.get("data", {}).items() if k.startswith("text/")]
                    stderr = o.get("output_type") == "stream" and o.get("name") == "stderr"
                    for t in texts:
                        if "Traceback (most recent call last)" in t: out.append(f"{rel} cell {i}: a traceback in an output")
                        m = _TMP.search(t)
                        if m: out.append(f"{rel} cell {i}: a temporary folder in an output: {m[0][:60]}")
                        m = _LOG_LINE.search(t)
                        if m: out.append(f"{rel} cell {i}: a log line in an output: {t[m.start():].splitlines()[0][:100]}")
                        m = _WARNING.search(t)
                        if m: out.append(f"{rel} cell {i}: a warning in an output: {m[0][:100]}")
                        if (stderr and _BAR.search(t)) or "\r" in t:
                            out.append(f"{rel} cell {i}: a progress bar's output (or a line meant to be overwritten)")
        return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--no-process", action="store_true", help="check the pages already in _proc/")
    p.add_argument("--n-workers", type=int, default=None, help="notebooks processed at once (default: nbdev's, the CPU count)")
    a = p.parse_args(argv)
    cfg = settings()
    nbs, proc = ROOT / cfg.get("nbs_path", "nbs"), ROOT / "_proc"
    problems = []
    if not a.no_process:
        t0 = time.perf_counter()
        found = [m for nb in notebooks(nbs) for m in mixed_cells(nb)]
        if found:
            print("cells that the docs processing executes mix imports with other code (nbdev runs them without the cells "
                  "that define their names); keep imports in cells of their own:\n  " + "\n  ".join(found))
            return 1
        from fastcore.basics import defaults
        process(nbs, a.n_workers or defaults.cpus)
        print(f"docs processing (nbdev proc_nbs, {len(notebooks(nbs))} notebooks): {time.perf_counter() - t0:.1f} s")
    if not proc.is_dir():
        print(f"no processed pages in {proc}: run without --no-process"); return 1
    t0 = time.perf_counter()
    site = Site(proc, nbs, ROOT, cfg)
    problems = site.problems()
    links = [t for _, nb in site.pages.values() for _, md in _markdowns(nb) for t in _LINK.findall(_strip_fences(md))]
    n_site = sum(t.startswith(site.url) for t in links)
    n_repo = sum(bool(re.match(r"https://(github\.com|colab\.research\.google\.com/github|raw\.githubusercontent\.com)/"
                               + re.escape(site.repo), t)) for t in links)
    n_rel = sum(not re.match(r"^[a-z][a-z0-9+.-]*:", t) for t in links)
    print(f"page check ({len(site.pages)} pages; {len(links)} links: {n_site} to the site's pages, {n_rel} relative, "
          f"{n_repo} into the repository, {len(links) - n_site - n_rel - n_repo} elsewhere, not checked): "
          f"{time.perf_counter() - t0:.1f} s")
    if problems:
        print(f"{len(problems)} problems in the processed pages:\n  " + "\n  ".join(problems))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
