#!/usr/bin/env python3
"""Find import cycles between the source files of rig's library (rig/src).

Walks the module tree from rig/src/lib.rs (`mod x;` declarations, `#[path]` honoured), then for
every file collects the paths it names outside comments and string literals: `crate::…`,
`super::…`, `self::…`, a child module's name, or a name brought in by a `use` of a module. Each
path resolves to the file that defines the deepest module it names; that is an edge
file -> file. A `mod child;` declaration is not an edge. Nor is a module using one of its own
ancestors (`use super::SoakError` in soak/tree.rs): a folder's `mod.rs` holds what its children
share (the error type, the options) and re-exports their entry points, so the children build on
their parent and the parent uses its children, the one idiom allowed. `--strict` counts those
edges too, to see them. Any other loop (siblings, cousins, a child and a sibling of its parent)
is a cycle.

Prints every edge that takes part in a cycle (with the first line that makes it), then the
cycles, at two levels: files, and the top-level folders (`run/`, `report/`, ...). Exits 1 when
there is any cycle, 0 when there is none, 2 when the tree cannot be read.

    python3 ci/import-cycles.py [--strict] [rig/src]
"""

import os
import re
import sys

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
KEYWORDS = {"crate", "super", "self", "Self"}


def strip(src):
    """Blank out comments, string and char literals (keeping line breaks and lengths)."""
    out = []
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif src.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if src.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif src.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(re.sub(r"[^\n]", " ", src[i:j]))
            i = j
        elif c == "r" and re.match(r'r#*"', src[i:i + 20]) and not re.match(r"[A-Za-z0-9_]", src[i - 1:i] or " "):
            m = re.match(r'r(#*)"', src[i:])
            end = '"' + m.group(1)
            j = src.find(end, i + len(m.group(0)))
            j = n if j < 0 else j + len(end)
            out.append(re.sub(r"[^\n]", " ", src[i:j]))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            j = min(j + 1, n)
            out.append(re.sub(r"[^\n]", " ", src[i:j]))
            i = j
        elif c == "'":
            # A char literal ('a', '\n', '\u{1F}'), not a lifetime ('a).
            m = re.match(r"'(\\u\{[0-9a-fA-F]+\}|\\.|[^\\'])'", src[i:])
            if m:
                out.append(" " * len(m.group(0)))
                i += len(m.group(0))
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


class Tree:
    def __init__(self, src_dir):
        self.src_dir = src_dir
        self.file_of = {}  # module path tuple -> file (relative to src_dir)
        self.mod_of = {}  # file -> module path tuple
        self.inline = {}  # file -> [(start, end, module path tuple)] for inline `mod x { }`
        self.walk(os.path.join(src_dir, "lib.rs"), (), True)

    def walk(self, path, mod, owns_dir):
        rel = os.path.relpath(path, self.src_dir)
        self.file_of[mod] = rel
        self.mod_of[rel] = mod
        with open(path, encoding="utf-8") as f:
            text = strip(f.read())
        self.inline[rel] = []
        # The directory holding this module's children.
        base = os.path.dirname(path)
        child_dir = base if owns_dir else os.path.join(base, os.path.splitext(os.path.basename(path))[0])
        # #[path] needs the literal, which strip() blanked: read it from the raw text.
        with open(path, encoding="utf-8") as f:
            raw = f.read()
        for m in re.finditer(r"\bmod\s+(" + IDENT + r")\s*([;{])", text):
            name, kind = m.group(1), m.group(2)
            if kind == "{":
                end = match_brace(text, m.end() - 1)
                self.inline[rel].append((m.start(), end, mod + (name,)))
                continue
            if self.in_inline(rel, m.start()):
                continue  # `mod x;` inside an inline module: none in rig
            before = raw[max(0, m.start() - 200):m.start()]
            pm = re.search(r'#\[path\s*=\s*"([^"]+)"\s*\]\s*(?:#\[[^\]]*\]\s*)*(?:pub(?:\([^)]*\))?\s+)?$', before)
            if pm:
                # A `#[path]` is relative to the directory of the file that declares it.
                self.walk(os.path.join(base, pm.group(1)), mod + (name,), False)
                continue
            flat = os.path.join(child_dir, name + ".rs")
            nested = os.path.join(child_dir, name, "mod.rs")
            if os.path.exists(flat):
                self.walk(flat, mod + (name,), False)
            elif os.path.exists(nested):
                self.walk(nested, mod + (name,), True)
            else:
                raise SystemExit(f"import-cycles: {rel}: cannot find the file of `mod {name};`")

    def in_inline(self, rel, pos):
        return any(s <= pos < e for s, e, _ in self.inline[rel])

    def module_at(self, rel, pos):
        """The module path at a position of a file (the innermost inline module around it)."""
        best = self.mod_of[rel]
        for s, e, m in self.inline[rel]:
            if s <= pos < e and len(m) > len(best):
                best = m
        return best

    def file_for(self, path):
        """The file defining the deepest module that `path` (absolute) names, or None."""
        for k in range(len(path), -1, -1):
            prefix = tuple(path[:k])
            if prefix in self.file_of:
                return self.file_of[prefix]
            # An inline module's items live in the file around it.
            for rel, spans in self.inline.items():
                if any(m == prefix for _, _, m in spans):
                    return rel
        return None

    def is_module(self, path):
        path = tuple(path)
        return path in self.file_of or any(m == path for sp in self.inline.values() for _, _, m in sp)


def match_brace(text, i):
    depth = 0
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return j + 1
    return len(text)


def expand_use(tree_text):
    """Expand a use tree (`a::{b, c::{d@e}, self}`, `@` for ` as `) into segment lists."""
    tree_text = re.sub(r"\s+", "", tree_text)
    out = []

    def go(prefix, s):
        # Split s on top-level commas.
        parts, depth, cur = [], 0, ""
        for ch in s:
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            if ch == "," and depth == 0:
                parts.append(cur)
                cur = ""
            else:
                cur += ch
        if cur:
            parts.append(cur)
        for p in parts:
            if not p:
                continue
            brace = p.find("{")
            if brace >= 0 and p.endswith("}"):
                head = [x for x in p[:brace].split("::") if x]
                go(prefix + head, p[brace + 1:-1])
                continue
            out.append(prefix + p.split("::"))

    go([], tree_text)
    return out


def resolve(tree, mod, segs):
    """Absolute path for segments written in module `mod` (crate/super/self prefixes), or None."""
    segs = list(segs)
    if not segs:
        return None
    if segs[0] == "crate":
        return segs[1:]
    if segs[0] in ("super", "self"):
        cur = list(mod)
        while segs and segs[0] in ("super", "self"):
            if segs[0] == "super":
                if not cur:
                    return None
                cur.pop()
            segs.pop(0)
        return cur + segs
    return None


def edges_of(tree, rel, text):
    """{target file: (line, path text)} for one file."""
    found = {}
    line_of = lambda pos: text.count("\n", 0, pos) + 1

    def add(pos, abs_path, shown):
        if abs_path is None:
            return
        target = tree.file_for(abs_path)
        if target and target != rel and target not in found:
            found[target] = (line_of(pos), shown)

    # `use` declarations: expand groups, remember names that stand for modules.
    aliases = {}  # (module path, name) -> absolute module path
    for m in re.finditer(r"\buse\s+([^;]+);", text):
        mod = tree.module_at(rel, m.start())
        raw_tree = m.group(1)
        for segs in expand_use(re.sub(r"\s+as\s+", " as ", raw_tree).replace(" as ", "@")):
            name = segs[-1]
            if "@" in name:
                real, name = name.split("@", 1)
                segs = segs[:-1] + [real]
            first = segs[0]
            if first in ("crate", "super", "self"):
                abs_path = resolve(tree, mod, segs)
            elif tree.is_module(list(mod) + [first]):
                abs_path = list(mod) + segs
            else:
                continue  # an external crate (std, serde, ...)
            if abs_path is None:
                continue
            if abs_path and abs_path[-1] == "self":
                abs_path = abs_path[:-1]
                name = abs_path[-1] if abs_path else name
            if abs_path and abs_path[-1] == "*":
                abs_path = abs_path[:-1]
            add(m.start(), abs_path, "use " + "::".join(segs))
            if name not in ("*", "self") and tree.is_module(abs_path):
                aliases[(mod, name)] = abs_path

    # Paths in code: `crate::a::b`, `super::x`, `child::f`, `alias::f`.
    code = re.sub(r"\buse\s+[^;]+;", lambda m: " " * len(m.group(0)), text)
    # Visibility (`pub(super)`, `pub(in crate::x)`) is not a reference.
    code = re.sub(r"\bpub\s*\(\s*(in\s+[^)]*|crate|super|self)\s*\)", lambda m: " " * len(m.group(0)), code)
    for m in re.finditer(r"(?<![A-Za-z0-9_$:])(" + IDENT + r")((?:\s*::\s*" + IDENT + r")+)", code):
        mod = tree.module_at(rel, m.start())
        first = m.group(1)
        segs = [first] + [s.strip() for s in m.group(2).split("::") if s.strip()]
        if first in ("crate", "super", "self"):
            add(m.start(), resolve(tree, mod, segs), "::".join(segs))
        elif (mod, first) in aliases:
            add(m.start(), aliases[(mod, first)] + segs[1:], "::".join(segs))
        elif tree.is_module(list(mod) + [first]):
            add(m.start(), list(mod) + segs, "::".join(segs))
    return found


def sccs(nodes, graph):
    """Tarjan's strongly connected components (iterative)."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            nxt = next(it, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter[0]
                    counter[0] += 1
                    stack.append(nxt)
                    on.add(nxt)
                    work.append((nxt, iter(sorted(graph.get(nxt, ())))))
                elif nxt in on:
                    low[v] = min(low[v], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def shortest_cycle(comp, graph, start):
    """A shortest cycle through `start` inside one component (BFS)."""
    comp = set(comp)
    prev, queue = {start: None}, [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(graph.get(v, ())):
            if w not in comp:
                continue
            if w == start:
                path = [v]
                while prev[path[-1]] is not None:
                    path.append(prev[path[-1]])
                return list(reversed(path)) + [start]
            if w not in prev:
                prev[w] = v
                queue.append(w)
    return None


def report(level, graph, why):
    comps = sccs(sorted(graph), graph)
    if not comps:
        print(f"{level}: no import cycles")
        return 0
    print(f"{level}: {len(comps)} import cycle(s)")
    for comp in comps:
        print(f"  cycle among {', '.join(comp)}")
        seen = set()
        for node in comp:
            cyc = shortest_cycle(comp, graph, node)
            if not cyc:
                continue
            key = frozenset(zip(cyc, cyc[1:]))
            if key in seen:
                continue
            seen.add(key)
            print("    " + " -> ".join(cyc))
        for a in comp:
            for b in sorted(graph.get(a, ())):
                if b in comp:
                    print(f"      {a} -> {b}: {why[(a, b)]}")
    return len(comps)


def main():
    args = sys.argv[1:]
    strict = "--strict" in args
    args = [a for a in args if a != "--strict"]
    src_dir = args[0] if args else os.path.join(os.path.dirname(__file__), "..", "rig", "src")
    src_dir = os.path.normpath(src_dir)
    if not os.path.exists(os.path.join(src_dir, "lib.rs")):
        print(f"import-cycles: {src_dir}/lib.rs: not found", file=sys.stderr)
        return 2
    tree = Tree(src_dir)
    files, folders = {}, {}
    file_why, folder_why = {}, {}
    for rel in sorted(tree.mod_of):
        with open(os.path.join(src_dir, rel), encoding="utf-8") as f:
            text = strip(f.read())
        files.setdefault(rel, set())
        for target, (line, shown) in sorted(edges_of(tree, rel, text).items()):
            a, b = tree.mod_of[rel], tree.mod_of[target]
            if not strict and len(b) < len(a) and a[: len(b)] == b:
                continue  # a child using the module that declares it: see the docstring
            files[rel].add(target)
            file_why[(rel, target)] = f"{rel}:{line} {shown}"
            a, b = tree.mod_of[rel][:1], tree.mod_of[target][:1]
            if a and b and a != b:
                fa, fb = a[0] + "/", b[0] + "/"
                folders.setdefault(fa, set()).add(fb)
                folder_why.setdefault((fa, fb), f"{rel}:{line} {shown}")
    print(f"{len(files)} files, {sum(len(v) for v in files.values())} file-to-file imports")
    n = report("files", files, file_why)
    n += report("folders", folders, folder_why)
    return 1 if n else 0


if __name__ == "__main__":
    sys.exit(main())
