#!/usr/bin/env python3
"""The README's "Layout" section, made from the tree: every crate's source files with the first
sentence of their `//!` doc comment. `scripts/layout.py` prints it; `--check` fails when the
README's section differs (CI runs that); `--write` puts it into README.md."""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
WIDTH = 100
NAME = 26  # the column where descriptions start

# What is not a Rust source file, each checked to exist.
FILES = [
    ("Cargo.toml", "the workspace: the Worker (this package) and the crates below"),
    ("wrangler.toml", "production: KV FLAGS, R2 USER_DATA, Durable Object USER_DATA_DO "
     "(UserDataStore, SQLite storage), the processing queues, Workers Logs"),
    ("wrangler.dev.toml", "local development: the same bindings, header mode, default user `a`"),
    ("schema/", "numbered SQL migrations (0001_init.sql is the existing app's schema); legacy/: "
     "the existing app's own statements for the files it left in R2"),
    ("docs/", "api.md (the HTTP API), schema.md (the per-user database), processing.md, "
     "chunked-moves.md"),
    ("scripts/", "setup.sh (the toolchain), dev.sh (run locally), build-worker.sh, env.sh, "
     "check-layers.sh (the layer check), layout.py (this section)"),
    ("bench/results/", "the benchmarks' results files, one per run"),
]

# The crates and folders, in the order a reader meets them, with what each is.
PARTS = [
    ("src/", "the Worker (cdylib): the router, both data paths, moves, the admin API"),
    ("core/src/", "user-data-core: a user's database as the Worker and the migrator see it"),
    ("admin-api/src/", "the admin API and the object's internal calls as types (serde only)"),
    ("assertion/src/", "the signed assertion forwarded requests carry to the processing service"),
    ("migrator/src/", "the operators' CLI"),
    ("processor/src/", "the reference video-processing service (clip cuts with ffmpeg)"),
    ("test-support/src/", "the test harness: the Worker in workerd, generated and legacy databases"),
    ("bench/src/", "`cargo run --release -p bench`: both paths and moves, measured"),
    ("tests/", "the Worker in workerd via `wrangler dev`, one file per behaviour"),
]


def first_sentence(path: Path) -> str:
    lines = []
    for line in path.read_text().splitlines():
        if line.startswith("//!"):
            text = line[3:].strip()
            if not text:
                if lines:
                    break
                continue
            lines.append(text)
        elif lines or line.strip():
            break
    doc = " ".join(lines)
    match = re.match(r"(.+?\.)(\s|$)", doc)
    return (match.group(1) if match else doc).rstrip(".")


def wrap(name: str, text: str, indent: str, max_lines: int = 3) -> list:
    out, line = [], (indent + name).ljust(NAME - 1) + " "
    for word in text.split():
        if len(line) + len(word) > WIDTH and line.strip() != (indent + name).strip():
            out.append(line.rstrip())
            line = " " * NAME
            if len(out) == max_lines:
                out[-1] = out[-1] + " ..."
                return out
        line += word + " "
    out.append(line.rstrip())
    return out


def layout() -> str:
    out = ["```text"]
    for name, what in FILES:
        if not (ROOT / name).exists():
            sys.exit(f"scripts/layout.py names {name}, which is not in the tree")
        out += wrap(name, what, "")
    for folder, what in PARTS:
        out += wrap(folder, what, "")
        for path in sorted((ROOT / folder).rglob("*.rs")):
            rel = path.relative_to(ROOT / folder).as_posix()
            out += wrap(rel, first_sentence(path) or "(no doc comment)", "  ")
    out.append("```")
    return "\n".join(out) + "\n"


def readme_parts():
    text = README.read_text()
    start = text.index("## Layout\n")
    body = text.index("```text", start)
    end = text.index("```\n", body + 7) + 4
    return text, body, end


if __name__ == "__main__":
    made = layout()
    text, body, end = readme_parts()
    if "--check" in sys.argv:
        if text[body:end] != made:
            sys.exit("README.md's Layout section differs from the tree: run scripts/layout.py --write")
        print("layout: README.md's Layout section matches the tree")
    elif "--write" in sys.argv:
        README.write_text(text[:body] + made + text[end:])
    else:
        sys.stdout.write(made)
