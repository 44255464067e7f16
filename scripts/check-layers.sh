#!/usr/bin/env bash
# The layer check: every module of a crate imports only modules listed above it (or itself) in
# the "Layout" list of the crate's lib.rs doc comment, so no two modules import each other.
# A list entry is a bullet `//! - [`name`]` (or `[`a::b`]` for a submodule that sits lower
# than its parent); a file belongs to the longest entry its module path starts with.
#
#   scripts/check-layers.sh            checks the Worker (src/) and the core crate (core/src/)
#   scripts/check-layers.sh DIR...     checks the crates whose lib.rs is DIR/lib.rs
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || set -- src core/src

status=0
for dir in "$@"; do
    # The layers, bottom first.
    mapfile -t layers < <(sed -n 's|^//! - \[`\([a-z0-9_:]*\)`\].*|\1|p' "$dir/lib.rs")
    [ ${#layers[@]} -gt 0 ] || { echo "$dir/lib.rs lists no layers" >&2; exit 1; }
    rank() { # the layer of module path $1 (a::b::c): the longest listed prefix
        local path=$1 best=-1 best_len=0 i
        for i in "${!layers[@]}"; do
            local layer=${layers[$i]}
            if [[ $path == "$layer" || $path == "$layer"::* ]] && [ ${#layer} -gt $best_len ]; then
                best=$i best_len=${#layer}
            fi
        done
        echo "$best"
    }
    while IFS= read -r file; do
        module=${file#"$dir"/}
        module=${module%.rs}
        module=${module%/mod}
        module=${module//\//::}
        [ "$module" = lib ] && continue
        own=$(rank "$module")
        if [ "$own" -lt 0 ]; then
            echo "$file: module $module is in no layer of $dir/lib.rs" >&2
            status=1
            continue
        fi
        # Every `crate::a::b` the file's code names (imports and paths, test modules included;
        # comments may name any module).
        while IFS= read -r used; do
            target=$(rank "$used")
            if [ "$target" -gt "$own" ]; then
                echo "$file: $module (${layers[$own]}) uses crate::$used (${layers[$target]}), a layer above it" >&2
                status=1
            fi
        done < <(grep -v '^\s*//' "$file" | grep -o 'crate::[a-z0-9_]*\(::[a-z0-9_][a-z0-9_]*\)*' |
            sed 's/^crate:://' | sort -u)
    done < <(find "$dir" -name '*.rs' | sort)
done
[ $status -eq 0 ] && echo "check-layers: every module imports only the layers below it"
exit $status
