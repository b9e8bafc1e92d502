#!/bin/sh
# ctest "format": every C source and header follows .clang-format.
# Exit 77 (reported as skipped) when clang-format is not installed.
cd "$(dirname "$0")/.." || exit 1
command -v clang-format >/dev/null || { echo "clang-format not installed"; exit 77; }
find proto crypto sync server tools tests -name '*.[ch]' -print0 |
    xargs -0 clang-format --dry-run -Werror
